"""The spectrum across bandwidth scales: at which scale do the two embeddings differ?"""

import streamlit as st

from spec_app import charts, router, safe, services, state, views

comp = views.comparison_page(
    "Scales",
    "The Gaussian bandwidth sets the size of the groups a kernel sees. Here the comparison "
    "runs at several multiples of the data-driven bandwidths (the same for A and B); each line "
    "follows one group across scales.",
)
slot = st.empty()
with slot.container():
    bar = st.progress(0.0, text="scales")
    sweep = services.comparison.scale_sweep(comp, bar)
slot.empty()
if sweep is None:
    st.info("The cosine kernel has no bandwidth: choose the Gaussian kernel in the sidebar.")
    st.stop()
current = float(st.session_state.sigma_scale)
name_a, name_b = comp.names
st.plotly_chart(charts.scales_figure(sweep, current, (name_a, name_b)), width="stretch")
for multiplier, reason in sweep.skipped:
    st.caption(safe.md(f"x{multiplier:g} skipped: {reason}"))

dataset = comp.dataset
rows = []
for i, multiplier in enumerate(sweep.multipliers):
    result = sweep.results[i]
    row = {
        "scale": f"x{multiplier:g}",
        "sigma A": round(sweep.sigmas_a[i], 4),
        "sigma B": round(sweep.sigmas_b[i], 4),
        "SPEC-diff": round(result.spec_diff, 5),
    }
    for direction in "AB":
        top = result.modes_for(direction)[:1]
        if top:
            mode = top[0]
            desc = services.comparison.describe_mode(mode, dataset)
            row[f"strongest {direction}-not-{'B' if direction == 'A' else 'A'}"] = (
                f"{mode.eigenvalue:+.4f} · ~{mode.size:.0f} rows · {desc.headline}"
            )
    rows.append(row)
st.dataframe(rows, hide_index=True, width="stretch")
st.caption(
    "Read the scales by the groups they name (the table), not by SPEC-diff: eigenvalues grow "
    "with the bandwidth as every kernel value does. Smaller scales find smaller, tighter groups "
    "(down to near-duplicates); larger ones broader groups, until they stop being groups. "
    "x1 is the default, 0.3 x the median distance between rows."
)

labels = [f"x{m:g}" for m in sweep.multipliers]
index = min(range(len(labels)), key=lambda i: abs(sweep.multipliers[i] - current))
col_pick, col_go = st.columns([3, 2], vertical_alignment="bottom")
choice = col_pick.selectbox("Open the modes at", labels, index=index, key="scales_pick")
if col_go.button("Open at this scale", type="primary", key="scales_open"):
    multiplier = sweep.multipliers[labels.index(choice)]
    settings = {**state.current_settings(), "sigma_scale": multiplier}
    settings["sigma_a"] = settings["sigma_b"] = None  # the scale applies to the auto values
    state.apply(settings)
    st.switch_page(router.page_path("spectrum"))

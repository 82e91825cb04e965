"""SPEC Explorer web app (placeholder until the app lands)."""

import streamlit as st

st.set_page_config(page_title="SPEC Explorer", layout="wide")
st.title("SPEC Explorer")
st.write("The app is being built; the numerical core is `spec_core` (see README).")

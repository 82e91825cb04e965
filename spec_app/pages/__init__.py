"""The app's pages: scripts that streamlit runs through spec_app.router (not imported)."""

"""NiceGUI screens. Each module defines its pages inside register(), called once per app build."""

from pages import home


def register_all() -> None:
    home.register()

"""NiceGUI screens. Each module defines its pages inside register(), called once per app build."""

from components import session
from pages import (
    admin_audit,
    admin_backends,
    admin_log,
    admin_models,
    admin_nodes,
    admin_overview,
    admin_queue,
    admin_quota_requests,
    admin_settings,
    admin_sso,
    admin_users,
    chat,
    dashboard,
    gate,
    home,
    login,
    public_models,
    sso,
)


def register_all() -> None:
    gate.install()
    session.install()  # its sign-in route
    for page in (home, public_models, login, sso, dashboard, chat, admin_overview, admin_nodes, admin_backends,
                 admin_models, admin_users, admin_sso, admin_quota_requests, admin_queue, admin_audit, admin_log,
                 admin_settings):
        page.register()

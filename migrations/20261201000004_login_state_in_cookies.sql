-- Sign-ins in progress travel sealed in the browser's cookie; the replay cache remembers the
-- request IDs consumed. The per-login table is no longer used.
DROP TABLE saml_login_state;

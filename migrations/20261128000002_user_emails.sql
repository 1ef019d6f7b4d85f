-- Users' email addresses, one row each, lower-cased, so that SCIM filters such as
-- emails[type eq "work" and value eq "x"] and emails.value eq "x" run on an index.
CREATE TABLE scim_user_emails (
    tenant TEXT NOT NULL,
    user_id TEXT NOT NULL,
    position BIGINT NOT NULL,
    type_lower TEXT,
    value_lower TEXT NOT NULL,
    PRIMARY KEY (tenant, user_id, position)
);
CREATE INDEX scim_user_emails_value ON scim_user_emails (tenant, value_lower);

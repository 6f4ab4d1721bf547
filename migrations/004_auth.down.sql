DROP TABLE auth_api_tokens;
DROP TABLE auth_refresh_tokens;
DROP TABLE auth_principal_tenants;
DROP TABLE auth_principals;

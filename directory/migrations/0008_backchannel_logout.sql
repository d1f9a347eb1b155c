-- Sigil directory, version 8: OpenID Connect Back-Channel Logout 1.0
-- (issue 19).
--
-- * oidc_apps.backchannel_logout_uri: where the app takes logout tokens
--   (an absolute http or https URL, checked by `app_add`); NULL for an app
--   that is not told of ended sessions.
-- * oidc_apps.backchannel_logout_session_required: the app asked for `sid`
--   in logout tokens (the registration parameter of the same name). Sigil
--   always sends both `sid` and `sub`, so this only records the app's wish.
ALTER TABLE oidc_apps ADD COLUMN backchannel_logout_uri text
  CHECK (backchannel_logout_uri IS NULL
         OR (backchannel_logout_uri ~ '^https?://' AND length(backchannel_logout_uri) <= 2048));
ALTER TABLE oidc_apps ADD COLUMN backchannel_logout_session_required boolean NOT NULL DEFAULT true;

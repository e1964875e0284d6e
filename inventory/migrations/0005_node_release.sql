-- What an installed node reports: the digest of the image its installer wrote (beside the
-- release name the booted system carries), so "deployed" means both agree with the release.
ALTER TABLE machines ADD COLUMN booted_digest TEXT NOT NULL DEFAULT '';
-- Node tokens live as long as the installed system (until the machine is re-installed or
-- retired); deploy-environment tokens expire with the boot.
ALTER TABLE agent_tokens ADD COLUMN kind TEXT NOT NULL DEFAULT 'boot';

package lifecycle

import (
	"encoding/json"
	"fmt"
	"net/url"
	"slate/agent/agentproto"
	"strings"

	"slate/inventory"
)

// bootcInstallParams builds the install-bootc params of a bootc release for a machine.
// registryHost is how the machine reaches Slate's registry (host:port; see registryHostOf).
// The release's kernel arguments become one --karg each; the target disk is the machine's
// install-disk-serial label (none: the smallest non-removable disk), as for disk releases;
// root's SSH keys come from the release label root_ssh_authorized_keys, if any.
func bootcInstallParams(rel inventory.Release, m inventory.Machine, registryHost string) ([]byte, error) {
	ref := rel.Name + "@" + rel.Version
	if rel.Kind != KindBootc {
		return nil, fmt.Errorf("release %s is a %s release, not bootc", ref, rel.Kind)
	}
	if rel.ImageRef == "" || !digestRE.MatchString(rel.ImageDigest) {
		return nil, fmt.Errorf("release %s does not pin an image by digest (image %q, digest %q): create a release with both", ref, rel.ImageRef, rel.ImageDigest)
	}
	if registryHost == "" || strings.ContainsAny(registryHost, "/ ") {
		return nil, fmt.Errorf("registry host %q is not host:port: set Slate's public_url", registryHost)
	}
	kargs, err := splitKernelArgs(rel.KernelArgs)
	if err != nil {
		return nil, fmt.Errorf("release %s kernel_args: %w", ref, err)
	}
	return json.Marshal(agentproto.InstallBootcParams{
		Image:                 registryHost + "/" + rel.ImageRef,
		Digest:                rel.ImageDigest,
		TargetImgref:          rel.ImageRef + ":" + imageTag(rel.Version),
		Target:                installTarget(m),
		Kargs:                 kargs,
		RootSSHAuthorizedKeys: rel.Labels["root_ssh_authorized_keys"],
		Release:               ref,
	})
}

// registryHostOf is the host:port of Slate's registry as machines reach it. OCI clients
// (bootc among them) look for the registry at /v2/ of the host, so a public URL with a path
// cannot serve as a registry address.
func registryHostOf(publicURL string) (string, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("public_url %q is not an absolute URL: set it to how machines reach Slate (http://host:port)", publicURL)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		return "", fmt.Errorf("public_url %q has a path: registry clients need Slate at the root of its host", publicURL)
	}
	return u.Host, nil
}

// imageTag turns a release version into an OCI tag ([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}): the
// tag the installed system follows for updates.
func imageTag(version string) string {
	var b strings.Builder
	for i, r := range version {
		ok := r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || i > 0 && (r == '.' || r == '-')
		if !ok {
			r = '-'
			if i == 0 {
				r = '_'
			}
		}
		b.WriteRune(r)
	}
	t := b.String()
	if t == "" {
		t = "latest"
	}
	if len(t) > 128 {
		t = t[:128]
	}
	return t
}

// splitKernelArgs splits a kernel command line into arguments as the kernel does: at blanks
// outside double quotes, keeping the quotes (foo="a b" stays one argument, quoted, which is
// how bootc's --karg takes it).
func splitKernelArgs(s string) ([]string, error) {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range s {
		switch {
		case r == '"':
			quoted = !quoted
			cur.WriteRune(r)
		case !quoted && (r == ' ' || r == '\t' || r == '\n'):
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteRune(r)
		}
	}
	if quoted {
		return nil, fmt.Errorf("%q has an unclosed double quote", s)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	for _, a := range out {
		// bootc's CLI would read it as one of its own options.
		if strings.HasPrefix(a, "-") {
			return nil, fmt.Errorf("%q starts with '-': a kernel argument never does", a)
		}
	}
	return out, nil
}

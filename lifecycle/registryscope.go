package lifecycle

import (
	"encoding/json"
	"fmt"
	"strings"

	"slate/agent/agentproto"
	"slate/inventory"
)

// pullingTask says whether a task kind pulls from Slate's registry, the kind of token it
// runs under, and how to read the image ("repo@digest") its params name. A task that pulls (a
// node update, later) is added here: the registry scope of a machine's credentials is what
// its running tasks of this list need, and nothing else.
func pullingTask(kind agentproto.TaskKind) (token string, image func(json.RawMessage) (string, error), ok bool) {
	switch kind {
	case agentproto.KindInstallImage:
		return inventory.TokenBoot, installImageOf, true
	case agentproto.KindInstallBootc:
		return inventory.TokenBoot, bootcImageOf, true
	}
	return "", nil, false
}

// RegistryScope says what a machine's token of this kind may pull while these tasks run (the
// machine's running tasks): the manifests ("repo@sha256:<hex>") of the install it runs. With
// none, why says why not, for the refusal.
func RegistryScope(tokenKind string, running []inventory.Task) (images []string, why string) {
	for _, t := range running {
		token, image, ok := pullingTask(kindOf(t))
		if !ok || token != tokenKind {
			continue
		}
		img, err := image(t.Params)
		if err != nil {
			return nil, fmt.Sprintf("its %s task %s names no image it may pull: %v", t.Kind, t.ID, err)
		}
		images = append(images, img)
	}
	if len(images) > 0 {
		return images, ""
	}
	if tokenKind == inventory.TokenNode {
		return nil, "an installed system's node token pulls nothing (no task of its machine that pulls is running)"
	}
	return nil, "no install task of its machine is running: a machine pulls only the release it is installing, while it installs it"
}

func installImageOf(params json.RawMessage) (string, error) {
	var p agentproto.InstallImageParams
	if err := json.Unmarshal(params, &p); err != nil {
		return "", err
	}
	_, rest, ok := strings.Cut(p.BlobURL, "/v2/")
	repo, _, ok2 := strings.Cut(rest, "/blobs/")
	if !ok || !ok2 || repo == "" || !digestRE.MatchString(p.ImageDigest) {
		return "", fmt.Errorf("blob_url %q and image_digest %q do not name an image of Slate's registry", p.BlobURL, p.ImageDigest)
	}
	return repo + "@" + p.ImageDigest, nil
}

func bootcImageOf(params json.RawMessage) (string, error) {
	var p agentproto.InstallBootcParams
	if err := json.Unmarshal(params, &p); err != nil {
		return "", err
	}
	_, repo, ok := strings.Cut(p.Image, "/")
	if !ok || repo == "" || !digestRE.MatchString(p.Digest) {
		return "", fmt.Errorf("image %q and digest %q do not name an image of Slate's registry", p.Image, p.Digest)
	}
	return repo + "@" + p.Digest, nil
}

package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"time"

	"slate/image/registry"
)

func registryCommands() *command {
	return &command{name: "registry", summary: "the embedded image registry: push disk images, garbage collection", subs: []*command{
		{name: "push-disk", summary: "push a raw disk image (optionally gzip/zstd) as a one-layer OCI artifact (operator)", run: registryPushDisk},
		{name: "gc", summary: "remove images no tag or release references, and unreferenced blobs (admin)", run: registryGC},
		{name: "rm", summary: "delete one image (REPO@DIGEST) and its tags, unless a release uses it; audited (admin)", run: registryRm},
	}}
}

func registryGC(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "registry gc", "slate registry gc [--dry-run] [--json]")
	server, asJSON := apiFlags(fs)
	dry := fs.Bool("dry-run", false, "only report what would be removed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("registry gc takes no arguments, got %q", fs.Args())
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	// The collection first waits for pushes in flight (a large layer can take minutes).
	c.http.Timeout = 30 * time.Minute
	var rep registry.GCReport
	if err := c.do(ctx, "POST", "/registry/gc", nil, map[string]bool{"dry_run": *dry}, &rep); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, rep)
	}
	verb := "Removed"
	if rep.DryRun {
		verb = "Would remove (dry run)"
	}
	fmt.Fprintf(env.stdout, "%s %s and %s, freeing %d bytes (%.1f MiB); kept %s and %s.\n",
		verb, count(len(rep.Manifests), "manifest"), count(len(rep.Blobs), "blob"), rep.BytesFreed, float64(rep.BytesFreed)/(1<<20),
		count(rep.ManifestsKept, "manifest"), count(rep.BlobsKept, "blob"))
	for _, m := range rep.Manifests {
		fmt.Fprintln(env.stdout, "  "+m)
	}
	return nil
}

func registryRm(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "registry rm", "slate registry rm [--json] REPO@sha256:DIGEST")
	server, asJSON := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("registry rm takes one image, REPO@sha256:DIGEST (as `slate release list` shows it), got %q", fs.Args())
	}
	repo, digest, ok := strings.Cut(fs.Arg(0), "@")
	if !ok || repo == "" || digest == "" {
		return fmt.Errorf("%q is not REPO@sha256:DIGEST: images are deleted by digest, never by tag", fs.Arg(0))
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var rep registry.DeleteReport
	if err := c.do(ctx, "DELETE", "/registry/manifests/"+url.PathEscape(digest), url.Values{"repo": {repo}}, nil, &rep); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, rep)
	}
	fmt.Fprintf(env.stdout, "Deleted %s@%s", rep.Repo, rep.Digest)
	if len(rep.Tags) > 0 {
		fmt.Fprintf(env.stdout, " and its tags %s", strings.Join(rep.Tags, ", "))
	}
	fmt.Fprintln(env.stdout, "; its blobs are freed by the next `slate registry gc`.")
	return nil
}

func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

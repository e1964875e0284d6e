package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"

	"slate/inventory"
	"slate/lifecycle"
)

func releaseCommands() *command {
	return &command{name: "release", summary: "versioned system states: create, approve, retire, list, show, delete", subs: []*command{
		{name: "create", summary: "create a draft release", run: releaseCreate},
		{name: "approve", summary: "approve a draft release", run: releaseAction("approve")},
		{name: "retire", summary: "retire a release", run: releaseAction("retire")},
		{name: "list", summary: "list releases", run: releaseList},
		{name: "show", summary: "show one release", run: releaseShow},
		{name: "delete", summary: "delete a draft release (approved ones are retired, never deleted)", run: releaseDelete},
	}}
}

func releaseCreate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "release create", "slate release create --name N --version V --image REPO@sha256:... [--kind bootc|disk] [--bios-profile FILE.json] [--firmware-baseline FILE.json] [--karg ARG]... [--notes TEXT]")
	server, asJSON := apiFlags(fs)
	name := fs.String("name", "", "release name, e.g. line3-hmi")
	version := fs.String("version", "", "release version, e.g. 2026.11.1")
	img := fs.String("image", "", "image in Slate's registry pinned by digest: REPO@sha256:<hex>")
	kind := fs.String("kind", "bootc", "bootc (container image) or disk (raw disk image)")
	bios := fs.String("bios-profile", "", "JSON file: BIOS attribute → value")
	fw := fs.String("firmware-baseline", "", `JSON file: {"name", "version", "components": [{"component", "version", "image_uri"}]}`)
	var kargs multi
	fs.Var(&kargs, "karg", "kernel argument (repeatable)")
	notes := fs.String("notes", "", "release notes")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n := lifecycle.NewRelease{Name: *name, Version: *version, Kind: *kind, KernelArgs: strings.Join(kargs, " "), Notes: *notes}
	if *img != "" {
		repo, digest, ok := strings.Cut(*img, "@")
		if !ok {
			return fmt.Errorf("--image %q: pin the image by digest, REPO@sha256:<hex>", *img)
		}
		n.ImageRef, n.ImageDigest = repo, digest
	}
	for _, f := range []struct {
		path string
		dst  *map[string]any
	}{{*bios, &n.BIOSProfile}, {*fw, &n.FirmwareBaseline}} {
		if f.path == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(b, f.dst); err != nil {
			return fmt.Errorf("%s: not a JSON object: %w", f.path, err)
		}
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var r inventory.Release
	if err := c.do(ctx, "POST", "/releases", nil, n, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, r)
	}
	fmt.Fprintf(env.stdout, "Created draft release %s@%s (%s).\n", r.Name, r.Version, r.ID)
	return nil
}

func releaseAction(verb string) func(ctx context.Context, env *cliEnv, args []string) error {
	return func(ctx context.Context, env *cliEnv, args []string) error {
		fs := newFlagSet(env, "release "+verb, "slate release "+verb+" <id|name@version> [--reason TEXT]")
		server, asJSON := apiFlags(fs)
		reason := fs.String("reason", "", "why (retire)")
		if err := parseInterleaved(fs, args); err != nil {
			return err
		}
		ref, err := oneArg(fs, "release (id or name@version)")
		if err != nil {
			return err
		}
		c, err := newClient(env, *server)
		if err != nil {
			return err
		}
		var body any
		if verb == "retire" {
			body = map[string]string{"reason": *reason}
		}
		var r inventory.Release
		if err := c.do(ctx, "POST", "/releases/"+url.PathEscape(ref)+"/"+verb, nil, body, &r); err != nil {
			return err
		}
		if *asJSON {
			return printJSON(env.stdout, r)
		}
		fmt.Fprintf(env.stdout, "Release %s@%s is now %s.\n", r.Name, r.Version, r.State)
		return nil
	}
}

func releaseList(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "release list", "slate release list [--state draft|approved|retired] [--json]")
	server, asJSON := apiFlags(fs)
	state := fs.String("state", "", "only releases in this state")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	q := url.Values{}
	if *state != "" {
		q.Set("state", *state)
	}
	var out struct {
		Items []inventory.Release `json:"items"`
	}
	if err := c.do(ctx, "GET", "/releases", q, nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, out.Items)
	}
	tw := table(env.stdout)
	fmt.Fprintln(tw, "ID\tNAME\tVERSION\tKIND\tSTATE\tIMAGE\tBY\tAPPROVED BY\tMACHINES")
	for _, r := range out.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", r.ID, r.Name, r.Version, r.Kind, r.State, shortImage(r), r.CreatedBy, dash(r.ApprovedBy), r.UsedBy)
	}
	return tw.Flush()
}

func shortImage(r inventory.Release) string {
	if r.ImageDigest == "" {
		return dash(r.ImageRef)
	}
	return r.ImageRef + "@" + r.ImageDigest[:min(len(r.ImageDigest), 19)] + "…"
}

func releaseShow(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "release show", "slate release show <id|name@version> [--json]")
	server, asJSON := apiFlags(fs)
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	ref, err := oneArg(fs, "release")
	if err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var r inventory.Release
	if err := c.do(ctx, "GET", "/releases/"+url.PathEscape(ref), nil, nil, &r); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, r)
	}
	tw := table(env.stdout)
	for _, kv := range [][2]string{{"ID", r.ID}, {"Name", r.Name}, {"Version", r.Version}, {"Kind", r.Kind}, {"State", r.State},
		{"Image", r.ImageRef + "@" + r.ImageDigest}, {"Kernel args", r.KernelArgs}, {"Created by", r.CreatedBy}, {"Approved by", r.ApprovedBy},
		{"Notes", r.Notes}, {"Used by", fmt.Sprintf("%d machine(s)", r.UsedBy)}} {
		fmt.Fprintf(tw, "%s\t%s\n", kv[0], dash(kv[1]))
	}
	tw.Flush()
	b, _ := json.MarshalIndent(map[string]any{"bios_profile": r.BIOSProfile, "firmware_baseline": r.FirmwareBaseline}, "", "  ")
	fmt.Fprintln(env.stdout, string(b))
	return nil
}

func releaseDelete(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "release delete", "slate release delete <id|name@version>  (drafts only)")
	server, _ := apiFlags(fs)
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	ref, err := oneArg(fs, "release")
	if err != nil {
		return err
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "DELETE", "/releases/"+url.PathEscape(ref), nil, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Draft release %s deleted.\n", ref)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"slate/inventory"
	"slate/wipe"
)

// machineWipeConfirm is the CLI's wipe confirmation: the plan by digest, the machine's name
// typed again, and who performs the sanitization (printed on every certificate). Person
// fields left out are taken from the appliance's wipe.certificate_file; the appliance names
// any required one still missing.
func machineWipeConfirm(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine wipe-confirm", "slate machine wipe-confirm <id|name> --plan DIGEST --confirm NAME "+
		"[--person-name N] [--person-title T] [--person-organization O] [--person-location L] [--person-phone P] [--json]\n\n"+
		"Erases every drive of the machine as its wipe plan says (see `slate machine wipe-plan`). The person\n"+
		"performing the sanitization is printed on every certificate (NIST SP 800-88 Appendix G): name, title,\n"+
		"organization and location are required; fields not given come from the appliance's configuration.")
	server, asJSON := apiFlags(fs)
	plan := fs.String("plan", "", "the plan's digest, as `slate machine wipe-plan` shows it (required)")
	confirm := fs.String("confirm", "", "the machine's name, typed again (required)")
	var p wipe.Person
	fs.StringVar(&p.Name, "person-name", "", "who performs the sanitization")
	fs.StringVar(&p.Title, "person-title", "", "their title")
	fs.StringVar(&p.Organization, "person-organization", "", "their organisation")
	fs.StringVar(&p.Location, "person-location", "", "where the sanitization takes place")
	fs.StringVar(&p.Phone, "person-phone", "", "their phone (optional)")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	id, err := oneArg(fs, "machine id or name")
	if err != nil {
		return err
	}
	if *plan == "" {
		return errors.New("give --plan <digest>: the plan you checked (`slate machine wipe-plan " + id + "` shows it)")
	}
	if *confirm == "" {
		return errors.New("give --confirm <the machine's name>: the wipe erases every drive")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	var t inventory.Task
	body := map[string]any{"plan_digest": *plan, "machine_name": *confirm, "person": p.Trimmed()}
	if err := c.do(ctx, "POST", "/machines/"+url.PathEscape(id)+"/wipe/confirm", nil, body, &t); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, t)
	}
	fmt.Fprintf(env.stdout, "Wipe confirmed: task %s erases %s's drives; follow it with `slate machine watch %s`.\n", t.ID, id, id)
	return nil
}

package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"

	"slate/lifecycle"
)

func machineMedia(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "machine media", "slate machine media <id|name> status|eject|insert [deploy|URL] [--boot [--force]] [--json]\n\n"+
		"Drive the machine's virtual CD through its BMC, for a segment where it cannot network-boot.\n"+
		"insert puts Slate's deploy ISO (\"deploy\", the default) or an ISO Slate serves (a URL under\n"+
		"<public_url>/boot/) into the CD; --boot then boots the machine once from it (its deploy\n"+
		"environment gets an agent token because the boot is expected). A running machine is only\n"+
		"restarted with --force. status shows what the CD holds; eject empties it.")
	server, asJSON := apiFlags(fs)
	boot := fs.Bool("boot", false, "after inserting, boot the machine once from the CD (powers it on)")
	force := fs.Bool("force", false, "with --boot: restart the machine even if it runs (it loses what it is doing)")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() < 2 {
		return errors.New("give a machine and an action: status, eject or insert [deploy|URL] (see slate machine media -h)")
	}
	id, action := fs.Arg(0), fs.Arg(1)
	if action != "insert" && (*boot || *force) {
		return errors.New("--boot and --force go with insert")
	}
	if *force && !*boot {
		return errors.New("--force restarts a running machine into the boot from CD: give it with --boot")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	path := "/machines/" + url.PathEscape(id) + "/media"
	var r lifecycle.MediaResult
	switch action {
	case "status":
		if fs.NArg() != 2 {
			return errors.New("status takes no more arguments")
		}
		err = c.do(ctx, "GET", path, nil, nil, &r)
	case "eject":
		if fs.NArg() != 2 {
			return errors.New("eject takes no more arguments")
		}
		err = c.do(ctx, "POST", path+"/eject", nil, nil, &r)
	case "insert":
		req := lifecycle.MediaRequest{Image: lifecycle.DeployImage, Boot: *boot, Force: *force}
		switch fs.NArg() {
		case 2:
		case 3:
			req.Image = fs.Arg(2)
		default:
			return errors.New("insert takes one image: deploy or the URL of an ISO Slate serves")
		}
		err = c.do(ctx, "POST", path+"/insert", nil, req, &r)
	default:
		return fmt.Errorf("unknown media action %q: use status, eject or insert", action)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, r)
	}
	switch {
	case r.Booted:
		fmt.Fprintf(env.stdout, "%s: %s inserted; the machine boots once from it now.\n", id, r.Image)
	case r.Inserted:
		fmt.Fprintf(env.stdout, "%s: virtual CD holds %s.\n", id, r.Image)
	default:
		fmt.Fprintf(env.stdout, "%s: virtual CD is empty.\n", id)
	}
	return nil
}

package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/url"
)

func userSetDisabled(disabled bool) func(ctx context.Context, env *cliEnv, args []string) error {
	verb := map[bool]string{true: "disable", false: "enable"}[disabled]
	return func(ctx context.Context, env *cliEnv, args []string) error {
		fs := newFlagSet(env, "user "+verb, "slate user "+verb+" <username>")
		server, _ := apiFlags(fs)
		if err := parseInterleaved(fs, args); err != nil {
			return err
		}
		name, err := oneArg(fs, "username")
		if err != nil {
			return err
		}
		c, err := newClient(env, *server)
		if err != nil {
			return err
		}
		if err := c.do(ctx, "POST", "/users/"+url.PathEscape(name)+"/"+verb, nil, nil, nil); err != nil {
			return err
		}
		if disabled {
			fmt.Fprintf(env.stdout, "Disabled %s: it cannot log in and its tokens and sessions were revoked.\n", name)
		} else {
			fmt.Fprintf(env.stdout, "Enabled %s.\n", name)
		}
		return nil
	}
}

func userDelete(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "user delete", "slate user delete <username> --confirm <username>  (the name twice: deleting cannot be undone)")
	server, _ := apiFlags(fs)
	confirm := fs.String("confirm", "", "the username again, to confirm")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	name, err := oneArg(fs, "username")
	if err != nil {
		return err
	}
	if *confirm != name {
		return fmt.Errorf("not deleted: repeat the username with --confirm %s (deleting cannot be undone; `slate user disable` can)", name)
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	if err := c.do(ctx, "DELETE", "/users/"+url.PathEscape(name), nil, nil, nil); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "Deleted %s (the audit log keeps its history).\n", name)
	return nil
}

type revokeAnswer struct {
	Revoked int    `json:"revoked"`
	Message string `json:"message"`
}

func userPasswd(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "user passwd", "slate user passwd [<username>] [--current-password-file F] [--password-file F]  (no username: your own, needs the current password; with one: an admin sets it; passwords read from stdin otherwise, one per line)")
	server, asJSON := apiFlags(fs)
	curFile := fs.String("current-password-file", "", "read your current password from this file")
	pwFile := fs.String("password-file", "", "read the new password from this file")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return errors.New("give at most one username (see --help)")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	// Both passwords may come from stdin, one per line: one buffered reader for both reads
	// (readSecret's bufio.NewReader returns this same reader).
	in := *env
	in.stdin = bufio.NewReader(env.stdin)
	env = &in
	var out revokeAnswer
	if fs.NArg() == 1 {
		name := fs.Arg(0)
		pw, err := readSecret(env, *pwFile, "New password for "+name+": ")
		if err != nil {
			return err
		}
		if err := c.do(ctx, "PUT", "/users/"+url.PathEscape(name)+"/password", nil, map[string]string{"password": pw}, &out); err != nil {
			return err
		}
	} else {
		cur, err := readSecret(env, *curFile, "Current password: ")
		if err != nil {
			return err
		}
		pw, err := readSecret(env, *pwFile, "New password: ")
		if err != nil {
			return err
		}
		if err := c.do(ctx, "PUT", "/me/password", nil, map[string]string{"current_password": cur, "new_password": pw}, &out); err != nil {
			return err
		}
	}
	if *asJSON {
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "Password changed; %d other token(s) and session(s) revoked.\n", out.Revoked)
	return nil
}

func userRevokeTokens(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "user revoke-tokens", "slate user revoke-tokens [<username>]  (no username: all your tokens and sessions but this one; with one: an admin revokes all of that user's)")
	server, asJSON := apiFlags(fs)
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return errors.New("give at most one username (see --help)")
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	path := "/me/revoke-tokens"
	if fs.NArg() == 1 {
		path = "/users/" + url.PathEscape(fs.Arg(0)) + "/revoke-tokens"
	}
	var out revokeAnswer
	if err := c.do(ctx, "POST", path, nil, nil, &out); err != nil {
		return err
	}
	if *asJSON {
		return printJSON(env.stdout, out)
	}
	fmt.Fprintf(env.stdout, "Revoked %d token(s) and session(s): %s.\n", out.Revoked, out.Message)
	return nil
}

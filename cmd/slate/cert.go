package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strings"

	wipecert "slate/wipe/cert"
)

// certCommands is `slate cert …`: offline checks of sanitization certificates and decommission
// reports, for auditors who hold only the files and the appliance's public key.
func certCommands() *command {
	return &command{name: "cert", summary: "verify and render sanitization certificates offline", subs: []*command{
		{name: "verify", summary: "check a certificate's (or decommission report's) signature and content",
			usage: "<file.json> --public-key <appliance-public-key.pem>", run: certVerify},
		{name: "pdf", summary: "verify a certificate or report and render it as PDF",
			usage: "<file.json> --public-key <key.pem> --out <file.pdf>", run: certPDF},
		{name: "public-key", summary: "print the appliance's public key (PEM) to verify certificates with: from the API, or from --key-dir on the appliance",
			usage: "[--server URL] [-o key.pem] | --key-dir <dir>", run: certPublicKey},
		{name: "report", summary: "export certificates (by machine, date range or id) as one PDF report for the auditor",
			usage: "[--machine M] [--from 2026-12-01] [--to 2026-12-07] [--id C]... -o report.pdf", run: certReport},
	}}
}

// certFlags takes "--name value" / "--name=value" flags anywhere among the arguments.
func certFlags(args []string, names ...string) (map[string]string, []string, error) {
	vals := map[string]string{}
	var pos []string
	known := map[string]bool{}
	for _, n := range names {
		known[n] = true
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if !strings.HasPrefix(a, "-") || a == "-" {
			pos = append(pos, a)
			continue
		}
		name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !known[name] {
			return nil, nil, fmt.Errorf("unknown flag %s (flags: --%s)", a, strings.Join(names, ", --"))
		}
		if !hasVal {
			if i+1 >= len(args) {
				return nil, nil, fmt.Errorf("flag --%s needs a value", name)
			}
			i++
			val = args[i]
		}
		vals[name] = val
	}
	return vals, pos, nil
}

func loadPublicKey(path string) (ed25519.PublicKey, error) {
	if path == "" {
		return nil, fmt.Errorf("--public-key is required: the appliance's public key (`slate cert public-key --key-dir …` prints it)")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return wipecert.ParsePublicKey(b)
}

// verifiedDoc is a verified certificate or report.
type verifiedDoc struct {
	cert   *wipecert.Certificate
	report *wipecert.Report
	sig    wipecert.SignatureBlock
}

func verifyFile(path, keyPath string) (verifiedDoc, error) {
	pub, err := loadPublicKey(keyPath)
	if err != nil {
		return verifiedDoc{}, err
	}
	file, err := os.ReadFile(path)
	if err != nil {
		return verifiedDoc{}, fmt.Errorf("read %s: %w", path, err)
	}
	env, err := wipecert.ParseEnvelope(file)
	if err != nil {
		return verifiedDoc{}, fmt.Errorf("%s: %w", path, err)
	}
	var head struct{ Schema string }
	_ = json.NewDecoder(bytes.NewReader(env.Document)).Decode(&head)
	out := verifiedDoc{sig: env.Signature}
	if head.Schema == wipecert.ReportSchema {
		r, err := wipecert.VerifyReport(file, pub)
		if err != nil {
			return out, fmt.Errorf("%s: %w", path, err)
		}
		out.report = &r
		return out, nil
	}
	c, err := wipecert.VerifyCertificate(file, pub)
	if err != nil {
		return out, fmt.Errorf("%s: %w", path, err)
	}
	out.cert = &c
	return out, nil
}

func certVerify(ctx context.Context, env *cliEnv, args []string) error {
	fl, pos, err := certFlags(args, "public-key")
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("usage: slate cert verify <file.json> --public-key <key.pem>")
	}
	d, err := verifyFile(pos[0], fl["public-key"])
	if err != nil {
		return err
	}
	if r := d.report; r != nil {
		fmt.Fprintf(env.stdout, "VALID decommission report %s: machine %s, %d drives, complete=%v, signed by key %s\n",
			r.ID, r.Machine.ID, len(r.Drives), r.Complete, d.sig.KeyID)
		for _, x := range r.Drives {
			fmt.Fprintf(env.stdout, "  %s %s serial %s: %s %s %s certificate %s\n", x.Device, x.Model, x.Serial, x.Status, x.Level, x.Method, x.CertificateID)
		}
		return nil
	}
	c := d.cert
	fmt.Fprintf(env.stdout, "VALID certificate %s: %s %s serial %s on machine %s: %s by %s, verification %q passed; %s to %s; signed by key %s\n",
		c.ID, c.Media.Make, c.Media.Model, c.Media.SerialNumber, c.Machine.ID, c.Sanitization.MethodType, c.Sanitization.Method,
		c.Sanitization.VerificationMethod, c.Run.Start.Format("2006-01-02 15:04:05Z"), c.Run.End.Format("2006-01-02 15:04:05Z"), d.sig.KeyID)
	return nil
}

func certPDF(ctx context.Context, env *cliEnv, args []string) error {
	fl, pos, err := certFlags(args, "public-key", "out")
	if err != nil {
		return err
	}
	if len(pos) != 1 || fl["out"] == "" {
		return fmt.Errorf("usage: slate cert pdf <file.json> --public-key <key.pem> --out <file.pdf>")
	}
	d, err := verifyFile(pos[0], fl["public-key"])
	if err != nil {
		return err
	}
	var buf bytes.Buffer
	if d.report != nil {
		err = wipecert.RenderReportPDF(&buf, *d.report, d.sig)
	} else {
		err = wipecert.RenderCertificatePDF(&buf, *d.cert, d.sig)
	}
	if err != nil {
		return err
	}
	if err := os.WriteFile(fl["out"], buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", fl["out"], err)
	}
	fmt.Fprintf(env.stdout, "wrote %s (%d bytes) from verified %s\n", fl["out"], buf.Len(), pos[0])
	return nil
}

func certPublicKey(ctx context.Context, env *cliEnv, args []string) error {
	fl, _, err := certFlags(args, "key-dir", "server", "o", "out")
	if err != nil {
		return err
	}
	if fl["key-dir"] == "" {
		// From the API: what auditors and technicians without a shell on the appliance use.
		return certPublicKeyAPI(ctx, env, fl["server"], firstNonEmpty(fl["o"], fl["out"]))
	}
	priv, err := wipecert.LoadOrCreateSigningKey(fl["key-dir"], nil)
	if err != nil {
		return err
	}
	_, err = env.stdout.Write(wipecert.PublicKeyPEM(priv.Public().(ed25519.PublicKey)))
	return err
}

// certPublicKeyAPI fetches the public key from the appliance's API, checks that it parses and
// prints its fingerprint (to stderr when the PEM goes to stdout, so it can be piped).
func certPublicKeyAPI(ctx context.Context, env *cliEnv, server, out string) error {
	c, err := newClient(env, server)
	if err != nil {
		return err
	}
	var rr rawResponse
	if err := c.do(ctx, "GET", "/certificates/public-key", nil, nil, &rr); err != nil {
		return err
	}
	pub, err := wipecert.ParsePublicKey(rr.Body)
	if err != nil {
		return fmt.Errorf("the appliance answered with no usable public key: %w", err)
	}
	note := fmt.Sprintf("key %s, SHA-256 fingerprint %s\n", wipecert.KeyID(pub), wipecert.Fingerprint(pub))
	if out == "" {
		if _, err := env.stdout.Write(rr.Body); err != nil {
			return err
		}
		_, err = fmt.Fprint(env.stderr, note)
		return err
	}
	if err := os.WriteFile(out, rr.Body, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	_, err = fmt.Fprintf(env.stdout, "wrote %s: %s", out, note)
	return err
}

// certReport downloads the auditor's PDF of the selected certificates.
func certReport(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlagSet(env, "cert report", "slate cert report [--machine M] [--from DATE] [--to DATE] [--id ID]... -o report.pdf")
	server, _ := apiFlags(fs)
	machine := fs.String("machine", "", "only this machine's certificates (name or id)")
	from := fs.String("from", "", "issued on or after this date (2026-12-01) or RFC 3339 time")
	to := fs.String("to", "", "issued on or before this date (inclusive) or before this RFC 3339 time")
	var ids multiFlag
	fs.Var(&ids, "id", "only this certificate (repeat, or comma-separated)")
	out := fs.String("o", "", "write the PDF here (required)")
	if err := parseInterleaved(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("give -o <file.pdf>: where to write the report")
	}
	if _, err := wipecert.ParseSelection(*machine, *from, *to, ids); err != nil {
		return fmt.Errorf("--%w", err)
	}
	c, err := newClient(env, *server)
	if err != nil {
		return err
	}
	q := url.Values{}
	for k, v := range map[string]string{"machine": *machine, "from": *from, "to": *to} {
		if v != "" {
			q.Set(k, v)
		}
	}
	for _, id := range ids {
		q.Add("id", id)
	}
	var rr rawResponse
	if err := c.do(ctx, "GET", "/certificates/report.pdf", q, nil, &rr); err != nil {
		return err
	}
	if !bytes.HasPrefix(rr.Body, []byte("%PDF-")) {
		return fmt.Errorf("the appliance answered with no PDF (%d bytes, %s)", len(rr.Body), rr.Header.Get("Content-Type"))
	}
	if err := os.WriteFile(*out, rr.Body, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", *out, err)
	}
	fmt.Fprintf(env.stdout, "wrote %s (%d bytes)\n", *out, len(rr.Body))
	return nil
}

// multiFlag is a repeatable string flag.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

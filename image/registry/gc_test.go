package registry

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// anyone may push: the garbage collector, not authentication, is under test.
type anyone struct{}

func (anyone) Basic(context.Context, string, string, string) (Subject, error) {
	return Subject{Name: "tester", Access: Push}, nil
}
func (anyone) Bearer(context.Context, string, string) (Subject, error) {
	return Subject{Name: "tester", Access: Push}, nil
}

type gcFixture struct {
	t    *testing.T
	reg  *Registry
	host string
}

func newGCFixture(t *testing.T) *gcFixture {
	t.Helper()
	reg, err := NewRegistry(context.Background(), t.TempDir(), anyone{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(reg) // loopback
	t.Cleanup(srv.Close)
	return &gcFixture{t: t, reg: reg, host: strings.TrimPrefix(srv.URL, "http://")}
}

func (f *gcFixture) ref(s string) name.Reference {
	f.t.Helper()
	r, err := name.ParseReference(f.host+"/"+s, name.Insecure)
	if err != nil {
		f.t.Fatal(err)
	}
	return r
}

var auth = remote.WithAuth(&authn.Basic{Username: "tester", Password: "pw"})

func (f *gcFixture) push(s string, img v1.Image) {
	f.t.Helper()
	if err := remote.Write(f.ref(s), img, auth); err != nil {
		f.t.Fatalf("push %s: %v", s, err)
	}
}

// pullable fetches an image and every blob of it, checking each digest.
func (f *gcFixture) pullable(s string) error {
	img, err := remote.Image(f.ref(s), auth)
	if err != nil {
		return err
	}
	return readAll(img)
}

// readAll reads an image's config and layers; remote readers fail on a digest mismatch.
func readAll(img v1.Image) error {
	if _, err := img.RawConfigFile(); err != nil {
		return err
	}
	ls, err := img.Layers()
	if err != nil {
		return err
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			return err
		}
		_, err = io.Copy(io.Discard, rc)
		if cerr := rc.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *gcFixture) onDisk(d v1.Hash) bool {
	_, err := os.Stat(f.reg.BlobPath(d.String()))
	return err == nil
}

func imageOf(t *testing.T, layers ...v1.Layer) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(empty.Image, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func layer(t *testing.T, size int64) v1.Layer {
	t.Helper()
	l, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

func (f *gcFixture) sizeOf(hs ...v1.Hash) int64 {
	f.t.Helper()
	var n int64
	for _, h := range hs {
		fi, err := os.Stat(f.reg.BlobPath(h.String()))
		if err != nil {
			f.t.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// status is the answer to an authenticated request on the registry.
func (f *gcFixture) status(method, path string) (int, string, http.Header) {
	f.t.Helper()
	req, _ := http.NewRequest(method, "http://"+f.host+path, nil)
	req.SetBasicAuth("tester", "pw")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// TestGCKeepsTaggedAndReleasedRemovesTheRest pushes: image A tagged plant/a:1 (after C had
// that tag), image B untagged in plant/b but referenced by a release, image C untagged
// (its tag moved to A) and referenced by nothing, a multi-platform index tagged whose
// children are untagged, and a blob uploaded without any manifest. A, B and C share one
// layer. A dry run reports what a real run then removes, and removes nothing; the real run
// removes exactly C and its own blobs and the orphan blob.
func TestGCKeepsTaggedAndReleasedRemovesTheRest(t *testing.T) {
	f := newGCFixture(t)
	shared := layer(t, 200<<10)
	a := imageOf(t, shared, layer(t, 50<<10))
	b := imageOf(t, shared, layer(t, 60<<10))
	cOwn := layer(t, 70<<10)
	c := imageOf(t, shared, cOwn)
	idx := must(random.Index(30<<10, 1, 2))
	orphan := layer(t, 80<<10)

	f.push("plant/a:1", c) // C is pushed first under the tag …
	f.push("plant/a:1", a) // … which then moves to A, leaving C untagged.
	bDigest := must(b.Digest())
	f.push("plant/b@"+bDigest.String(), b)
	if err := remote.WriteIndex(f.ref("plant/multi:2"), idx, auth); err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteLayer(f.ref("plant/a:1").Context(), orphan, auth); err != nil {
		t.Fatal(err)
	}
	cDigest := must(c.Digest())
	cConfig := must(c.ConfigName())
	cLayer := must(cOwn.Digest())
	orphanDigest := must(orphan.Digest())
	for _, s := range []string{"plant/a:1", "plant/b@" + bDigest.String(), "plant/a@" + cDigest.String()} {
		if err := f.pullable(s); err != nil {
			t.Fatalf("before GC %s: %v", s, err)
		}
	}
	keep := []string{"plant/b@" + bDigest.String(), "plant/gone@sha256:" + strings.Repeat("0", 64)}
	wantBlobs := []string{cDigest.String(), cConfig.String(), cLayer.String(), orphanDigest.String()}
	slices.Sort(wantBlobs)
	wantBytes := f.sizeOf(cDigest, cConfig, cLayer, orphanDigest)

	dry, err := f.reg.GC(context.Background(), GCOptions{Keep: keep, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if !dry.DryRun || fmt.Sprint(dry.Manifests) != fmt.Sprint([]string{"plant/a@" + cDigest.String()}) ||
		fmt.Sprint(dry.Blobs) != fmt.Sprint(wantBlobs) || dry.BytesFreed != wantBytes {
		t.Fatalf("dry run report: %+v\nwant manifests [plant/a@%s], blobs %v, %d bytes", dry, cDigest, wantBlobs, wantBytes)
	}
	if err := f.pullable("plant/a@" + cDigest.String()); err != nil || !f.onDisk(orphanDigest) {
		t.Fatalf("the dry run removed something: C %v, orphan on disk %v", err, f.onDisk(orphanDigest))
	}

	got, err := f.reg.GC(context.Background(), GCOptions{Keep: keep})
	if err != nil {
		t.Fatal(err)
	}
	dry.DryRun = false
	if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", dry) {
		t.Fatalf("the real run differs from the dry run:\n real %+v\n dry  %+v", got, dry)
	}
	// What is kept is whole: every blob pulls and matches its digest.
	for _, s := range []string{"plant/a:1", "plant/b@" + bDigest.String()} {
		if err := f.pullable(s); err != nil {
			t.Fatalf("after GC %s: %v", s, err)
		}
	}
	ii, err := remote.Index(f.ref("plant/multi:2"), auth)
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil || len(im.Manifests) != 2 {
		t.Fatalf("index: %v", err)
	}
	for _, d := range im.Manifests {
		child, err := ii.Image(d.Digest)
		if err == nil {
			err = readAll(child)
		}
		if err != nil {
			t.Fatalf("the index's untagged child %s went with the garbage: %v", d.Digest, err)
		}
	}
	if !f.onDisk(must(shared.Digest())) {
		t.Fatal("the layer A and B share with C was removed")
	}
	// C and what only C used are gone, and so is the orphan blob.
	if _, err := remote.Get(f.ref("plant/a@"+cDigest.String()), auth); err == nil {
		t.Fatal("C's manifest still answers")
	}
	for _, d := range []v1.Hash{cDigest, cConfig, cLayer, orphanDigest} {
		if f.onDisk(d) {
			t.Fatalf("blob %s is still on disk", d)
		}
	}
	for _, d := range []v1.Hash{cLayer, orphanDigest} {
		if st, body, _ := f.status("HEAD", "/v2/plant/a/blobs/"+d.String()); st != http.StatusNotFound {
			t.Fatalf("blob %s still answers: %d %s", d, st, body)
		}
	}
	// A second run finds nothing left to do.
	again, err := f.reg.GC(context.Background(), GCOptions{Keep: keep})
	if err != nil || len(again.Manifests) != 0 || len(again.Blobs) != 0 || again.BytesFreed != 0 || again.BlobsKept != got.BlobsKept {
		t.Fatalf("second run: %+v %v", again, err)
	}
	// The registry still takes pushes afterwards, including of what was collected.
	f.push("plant/a:2", c)
	if err := f.pullable("plant/a:2"); err != nil {
		t.Fatal(err)
	}
}

// TestGCOfAnEmptyRegistry: nothing pushed yet, nothing to do, no error.
func TestGCOfAnEmptyRegistry(t *testing.T) {
	f := newGCFixture(t)
	rep, err := f.reg.GC(context.Background(), GCOptions{})
	if err != nil || len(rep.Manifests) != 0 || len(rep.Blobs) != 0 {
		t.Fatalf("%+v %v", rep, err)
	}
	// An upload abandoned before any manifest: its repository has no manifests folder.
	if err := remote.WriteLayer(f.ref("plant/x:1").Context(), layer(t, 1<<10), auth); err != nil {
		t.Fatal(err)
	}
	rep, err = f.reg.GC(context.Background(), GCOptions{})
	if err != nil || len(rep.Blobs) != 1 {
		t.Fatalf("orphan only: %+v %v", rep, err)
	}
}

// TestPushIsRefusedDuringGC: while a collection holds the registry, writes are answered 503 with
// the reason, reads go on.
func TestPushIsRefusedDuringGC(t *testing.T) {
	f := newGCFixture(t)
	f.push("plant/a:1", imageOf(t, layer(t, 1<<10)))
	f.reg.gcMu.Lock()
	st, body, hdr := f.status("POST", "/v2/plant/a/blobs/uploads/")
	if st != http.StatusServiceUnavailable || !strings.Contains(body, "registry garbage collection in progress, retry") || hdr.Get("Retry-After") == "" {
		t.Fatalf("push during GC: %d %s", st, body)
	}
	if err := f.pullable("plant/a:1"); err != nil {
		t.Fatalf("pull during GC: %v", err)
	}
	f.reg.gcMu.Unlock()
	f.push("plant/a:2", imageOf(t, layer(t, 1<<10)))
}

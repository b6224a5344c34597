package qemutest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// adminPassword is what the tests set at the first login.
const adminPassword = "qemu-test-Passw0rd"

// Every pattern that captures a value ends with the line end: the console
// arrives in pieces, and a capture at the end of what has arrived so far
// (such as `(\S+)` alone) matches a prefix of the value. That was the "1 in 7
// first logins refused": the password was captured as its first few
// letters.
var (
	firstStart = regexp.MustCompile(`First start: created user "admin" with password (\S+)\r?\n`)
	promptRe   = regexp.MustCompile(`(?s)^(.*?)admin@\S+> `)
	tokenRe    = regexp.MustCompile(`not shown again:\r?\n(\S+)\r?\n`)
)

// bootTimes are one boot's milestones, measured from QEMU's start.
type bootTimes struct {
	userSpace, login, firstFrame time.Duration
}

// firstLogin waits for the first-start password and the login prompt,
// logs in as admin and sets adminPassword; it returns the time the login
// prompt appeared.
func firstLogin(v *vm) time.Duration {
	v.t.Helper()
	m, _ := v.expect(firstStart, 4*time.Minute)
	login := v.expectString("login: ", time.Minute)
	v.loginAs(m[1])
	v.expectString("New password: ", 30*time.Second)
	v.send(adminPassword + "\r")
	v.expectString("Retype new password: ", 30*time.Second)
	v.send(adminPassword + "\r")
	v.expect(promptRe, 30*time.Second)
	return login
}

// login logs in as admin with adminPassword (a later boot); it returns
// the time the login prompt appeared.
func login(v *vm) time.Duration {
	v.t.Helper()
	at := v.expectString("login: ", 4*time.Minute)
	v.loginAs(adminPassword)
	v.expect(promptRe, 30*time.Second)
	return at
}

var loginResult = regexp.MustCompile(`Login incorrect|New password: |admin@\S+> `)

// loginAs types admin and password at a login prompt already seen. A
// refusal fails the test: the right password must always be accepted.
func (v *vm) loginAs(password string) {
	v.t.Helper()
	v.send("admin\r")
	v.expectString("Password: ", 30*time.Second)
	mark := v.markNow()
	v.send(password + "\r")
	m, _ := v.expect(loginResult, 30*time.Second)
	if m[0] == "Login incorrect" {
		v.t.Fatalf("login as admin refused; console:\n%s", v.tail())
	}
	v.rewind(mark) // the caller expects what followed the password
}

// run types a console command and returns its output (echo included),
// failing the test on an "error:" line unless allowErr.
func (v *vm) run(cmd string, timeout time.Duration, allowErr bool) string {
	v.t.Helper()
	v.send(cmd + "\r")
	m, _ := v.expect(promptRe, timeout)
	out := strings.ReplaceAll(m[1], "\r", "")
	if !allowErr && strings.Contains(out, "\nerror: ") {
		v.t.Fatalf("console %q failed:\n%s", cmd, out)
	}
	return out
}

// createToken creates an admin API token on the console.
func (v *vm) createToken(name string) string {
	v.t.Helper()
	v.send("tokens create " + name + " admin\r")
	m, _ := v.expect(tokenRe, 30*time.Second)
	v.expect(promptRe, 30*time.Second)
	return m[1]
}

// apiClient talks to the guest's HTTPS API through the hostfwd. The
// certificate is the appliance's self-signed one, made at its first boot.
type apiClient struct {
	base, token string
	hc          *http.Client
}

func newAPI(port int, token string) *apiClient {
	return &apiClient{
		base: fmt.Sprintf("https://127.0.0.1:%d", port), token: token,
		hc: &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, // the appliance's own self-signed certificate
		}},
	}
}

// get GETs path into out (JSON) or returns the body when out is an
// io.Writer.
func (a *apiClient) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, a.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := a.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("GET %s: %s: %s", path, resp.Status, b)
	}
	if w, ok := out.(io.Writer); ok {
		_, err = io.Copy(w, resp.Body)
		return err
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// cameraView is the part of GET /api/v1/cameras/{name} the tests read.
type cameraView struct {
	Name           string    `json:"name"`
	State          string    `json:"state"`
	LastError      string    `json:"last_error"`
	LastFrame      time.Time `json:"last_frame"`
	FramesRecorded int64     `json:"frames_recorded"`
	FramesDropped  int64     `json:"frames_dropped"`
}

// waitFrames polls the API until camera has recorded at least n frames.
func (a *apiClient) waitFrames(t *testing.T, ctx context.Context, camera string, n int64, timeout time.Duration) cameraView {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last cameraView
	var lastErr error
	for time.Now().Before(deadline) {
		var c cameraView
		if lastErr = a.get(ctx, "/api/v1/cameras/"+camera, &c); lastErr == nil {
			last = c
			if c.FramesRecorded >= n {
				return c
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("camera %s did not record %d frames within %v: last %+v, %v", camera, n, timeout, last, lastErr)
	return last
}

// exportClip fetches a clip of camera over the API into path.
func (a *apiClient) exportClip(t *testing.T, ctx context.Context, camera string, from, to time.Time, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	q := fmt.Sprintf("/api/v1/export?camera=%s&from=%s&to=%s", camera, from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	if err := a.get(ctx, q, f); err != nil {
		t.Fatalf("export: %v", err)
	}
}

package console

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/nvrfw/nvr/firmware/config"
)

func camerasCommand() *command {
	camFlags := map[string]flagKind{"user": valueFlag, "password": valueFlag, "ask-password": boolFlag, "transport": valueFlag,
		"max-age": valueFlag, "disabled": boolFlag, "no-test": boolFlag}
	editFlags := map[string]flagKind{"url": valueFlag, "user": valueFlag, "password": valueFlag, "ask-password": boolFlag,
		"transport": valueFlag, "max-age": valueFlag, "enable": boolFlag, "disable": boolFlag, "no-test": boolFlag}
	return &command{name: "cameras", summary: "list, add, edit, remove and test cameras", subs: []*command{
		{name: "list", args: "[--json]", summary: "configured cameras and their state", role: config.RoleViewer, json: true, run: runCamerasList},
		{name: "add", args: "NAME URL [--user U] [--ask-password | --password P] [--transport tcp|udp|multicast] [--max-age 30d] [--disabled] [--no-test]",
			summary: "add a camera (tested first; recording starts at once)", role: config.RoleOperator, flags: camFlags, run: runCamerasAdd,
			help: "  NAME: 1-32 of a-z 0-9 - _.  URL: rtsp://host[:port]/path, credentials go in --user and --ask-password.\n" +
				"  The camera is tested before it is saved; --no-test saves it anyway (e.g. when it is not installed yet)."},
		{name: "edit", args: "NAME [--url URL] [--user U] [--ask-password | --password P] [--transport T] [--max-age D] [--enable | --disable] [--no-test]",
			summary: "change a camera (its session restarts)", role: config.RoleOperator, flags: editFlags, run: runCamerasEdit},
		{name: "remove", args: "NAME", summary: "stop recording a camera (its footage stays until evicted)", role: config.RoleOperator, run: runCamerasRemove},
		{name: "test", args: "NAME | URL [--user U] [--ask-password | --password P] [--transport T]",
			summary: "connect to a camera without saving anything", role: config.RoleOperator,
			flags: map[string]flagKind{"user": valueFlag, "password": valueFlag, "ask-password": boolFlag, "transport": valueFlag}, run: runCamerasTest},
	}}
}

// cameraView is a camera as shown, without its password.
type cameraView struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	Username    string `json:"username,omitempty"`
	HasPassword bool   `json:"has_password"`
	Transport   string `json:"transport"`
	MaxAge      string `json:"max_age"`
	Enabled     bool   `json:"enabled"`
	State       string `json:"state,omitempty"`
	Detail      string `json:"detail,omitempty"`
}

func runCamerasList(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	live := map[string]CameraStatus{}
	if st, err := s.c.opts.System.Status(ctx); err == nil {
		for _, c := range st.Cameras {
			live[c.Name] = c
		}
	}
	views := []cameraView{}
	for _, c := range site.Cameras {
		v := cameraView{Name: c.Name, URL: c.URL, Username: c.Username, HasPassword: c.Password != "", Transport: string(c.Transport),
			MaxAge: formatAge(c.MaxAge), Enabled: c.Enabled, State: live[c.Name].State, Detail: live[c.Name].Detail}
		if v.State == "" && !c.Enabled {
			v.State = StateDisabled
		}
		views = append(views, v)
	}
	if a.has("json") {
		return s.printJSON(views)
	}
	if len(views) == 0 {
		s.c.printf("no cameras (add one with \"cameras add NAME URL\")\n")
		return nil
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tTRANSPORT\tMAX-AGE\tUSER\tURL")
	for _, v := range views {
		user := v.Username
		if v.HasPassword {
			user += ":********"
		}
		state := v.State
		if state == "" {
			state = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, sanitize(state), v.Transport, v.MaxAge, sanitize(user), sanitize(v.URL))
	}
	tw.Flush()
	s.c.printf("%s", b.String())
	return nil
}

// cameraFlags applies the credential, transport and retention flags to c.
func (s *session) cameraFlags(ctx context.Context, a parsedArgs, c *config.Camera) error {
	if v, ok := a.get("user"); ok {
		c.Username = v
	}
	if a.has("password") && a.has("ask-password") {
		return usagef("give --password or --ask-password, not both")
	}
	if v, ok := a.get("password"); ok {
		c.Password = config.Secret(v)
	}
	if a.has("ask-password") {
		pw, err := s.ask(ctx, "Camera password: ", false)
		if err != nil {
			return err
		}
		c.Password = config.Secret(pw)
	}
	if v, ok := a.get("transport"); ok {
		c.Transport = config.Transport(v)
	}
	if v, ok := a.get("max-age"); ok {
		d, err := parseAge(v)
		if err != nil {
			return err
		}
		c.MaxAge = d
	}
	return nil
}

// testCamera runs the system's camera test unless --no-test.
func (s *session) testCamera(ctx context.Context, a parsedArgs, c config.Camera) error {
	if a.has("no-test") {
		return nil
	}
	s.c.printf("testing %s ...\n", sanitize(c.URL))
	desc, err := s.c.opts.System.TestCamera(ctx, c)
	if err != nil {
		return fmt.Errorf("camera test failed: %v (nothing saved; --no-test saves it anyway)", err)
	}
	s.c.printf("camera answers: %s\n", sanitize(desc))
	return nil
}

func runCamerasAdd(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 2 {
		return usagef("need NAME and URL")
	}
	c := config.Camera{Name: a.pos[0], URL: a.pos[1], Transport: config.TransportTCP, Enabled: !a.has("disabled")}
	if err := s.cameraFlags(ctx, a, &c); err != nil {
		return err
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	if _, exists := site.Camera(c.Name); exists {
		return fmt.Errorf("camera %q already exists (use \"cameras edit\")", c.Name)
	}
	if err := config.ValidateCamera(c); err != nil {
		return err
	}
	if err := s.testCamera(ctx, a, c); err != nil {
		return err
	}
	if _, err := s.apply(config.AddCamera{Camera: c}); err != nil {
		return err
	}
	if c.Enabled {
		s.c.printf("camera %s added; recording starts now\n", c.Name)
	} else {
		s.c.printf("camera %s added, disabled\n", c.Name)
	}
	return nil
}

func runCamerasEdit(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("need the camera NAME")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	old, ok := site.Camera(a.pos[0])
	if !ok {
		return fmt.Errorf("no camera %q", sanitize(a.pos[0]))
	}
	c := old
	if v, ok := a.get("url"); ok {
		c.URL = v
	}
	if err := s.cameraFlags(ctx, a, &c); err != nil {
		return err
	}
	if a.has("enable") && a.has("disable") {
		return usagef("give --enable or --disable, not both")
	}
	if a.has("enable") {
		c.Enabled = true
	}
	if a.has("disable") {
		c.Enabled = false
	}
	if c == old {
		s.c.printf("nothing to change\n")
		return nil
	}
	if err := config.ValidateCamera(c); err != nil {
		return err
	}
	if c.Enabled && (c.URL != old.URL || c.Username != old.Username || c.Password != old.Password || c.Transport != old.Transport) {
		if err := s.testCamera(ctx, a, c); err != nil {
			return err
		}
	}
	if _, err := s.apply(config.UpdateCamera{Camera: c}); err != nil {
		return err
	}
	s.c.printf("camera %s changed\n", c.Name)
	return nil
}

func runCamerasRemove(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("need the camera NAME")
	}
	if _, err := s.apply(config.RemoveCamera{Name: a.pos[0]}); err != nil {
		return err
	}
	s.c.printf("camera %s removed; its footage stays until the ring reuses the space\n", a.pos[0])
	return nil
}

func runCamerasTest(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("need a camera NAME or an rtsp:// URL")
	}
	var c config.Camera
	if strings.Contains(a.pos[0], "://") {
		c = config.Camera{Name: "test", URL: a.pos[0], Transport: config.TransportTCP}
	} else {
		site, err := s.c.opts.Config.Site()
		if err != nil {
			return err
		}
		var ok bool
		if c, ok = site.Camera(a.pos[0]); !ok {
			return fmt.Errorf("no camera %q", sanitize(a.pos[0]))
		}
	}
	if err := s.cameraFlags(ctx, a, &c); err != nil {
		return err
	}
	if err := config.ValidateCamera(c); err != nil {
		return err
	}
	return s.testCamera(ctx, parsedArgs{}, c)
}

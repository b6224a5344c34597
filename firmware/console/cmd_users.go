package console

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nvrfw/nvr/firmware/config"
)

func usersCommand() *command {
	return &command{name: "users", summary: "console and API users", subs: []*command{
		{name: "list", args: "[--json]", summary: "users and their roles", role: config.RoleAdmin, json: true, run: runUsersList},
		{name: "add", args: "NAME admin|operator|viewer", summary: "add a user (asks for the password)", role: config.RoleAdmin, run: runUsersAdd},
		{name: "remove", args: "NAME", summary: "remove a user", role: config.RoleAdmin, run: runUsersRemove},
		{name: "passwd", args: "[NAME]", summary: "change your password, or (admin) another user's", role: config.RoleViewer, run: runUsersPasswd},
	}}
}

type userView struct {
	Name               string    `json:"name"`
	Role               string    `json:"role"`
	MustChangePassword bool      `json:"must_change_password"`
	Created            time.Time `json:"created"`
}

func runUsersList(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	views := []userView{}
	for _, u := range site.Users {
		views = append(views, userView{u.Name, string(u.Role), u.MustChangePassword, u.Created})
	}
	if a.has("json") {
		return s.printJSON(views)
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED\t")
	for _, v := range views {
		note := ""
		if v.MustChangePassword {
			note = "must change password"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", v.Name, v.Role, s.localTime(v.Created), note)
	}
	tw.Flush()
	s.c.printf("%s", b.String())
	return nil
}

func parseRole(v string) (config.Role, error) {
	r := config.Role(v)
	if !r.Allows(config.RoleViewer) {
		return "", usagef("role must be admin, operator or viewer, not %q", sanitize(v))
	}
	return r, nil
}

func runUsersAdd(ctx context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 2 {
		return usagef("need NAME and ROLE")
	}
	role, err := parseRole(a.pos[1])
	if err != nil {
		return err
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	if _, ok := site.User(a.pos[0]); ok {
		return fmt.Errorf("user %q already exists", a.pos[0])
	}
	if err := config.ValidateUserName(a.pos[0]); err != nil { // before asking for a password
		return err
	}
	pw, err := s.askNewPassword(ctx)
	if err != nil {
		return err
	}
	if _, err := s.apply(config.AddUser{Name: a.pos[0], Role: role, Password: pw}); err != nil {
		return err
	}
	s.c.printf("user %s added (%s)\n", a.pos[0], role)
	return nil
}

// askNewPassword asks for a password twice.
func (s *session) askNewPassword(ctx context.Context) (string, error) {
	pw, err := s.ask(ctx, "Password: ", false)
	if err != nil {
		return "", err
	}
	if err := config.CheckPassword(pw); err != nil {
		return "", err
	}
	again, err := s.ask(ctx, "Retype password: ", false)
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords differ: nothing changed")
	}
	return pw, nil
}

func runUsersRemove(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("need the user NAME")
	}
	if a.pos[0] == s.user.Name {
		return errors.New("you cannot remove yourself: log in as another admin")
	}
	if _, err := s.apply(config.RemoveUser{Name: a.pos[0]}); err != nil {
		return err
	}
	s.c.printf("user %s removed\n", a.pos[0])
	return nil
}

func runUsersPasswd(ctx context.Context, s *session, a parsedArgs) error {
	switch {
	case len(a.pos) > 1:
		return usagef("at most one NAME")
	case len(a.pos) == 1 && a.pos[0] != s.user.Name:
		if !s.user.Role.Allows(config.RoleAdmin) {
			return fmt.Errorf("permission denied: changing another user's password needs the admin role")
		}
		pw, err := s.askNewPassword(ctx)
		if err != nil {
			return err
		}
		if _, err := s.apply(config.SetPassword{Name: a.pos[0], Password: pw}); err != nil {
			return err
		}
		s.c.printf("password of %s changed\n", a.pos[0])
		return nil
	}
	cur, err := s.ask(ctx, "Current password: ", false)
	if err != nil {
		return err
	}
	if _, err := s.c.opts.Config.Authenticate(s.user.Name, cur); err != nil {
		return errors.New("wrong current password: nothing changed")
	}
	pw, err := s.askNewPassword(ctx)
	if err != nil {
		return err
	}
	if _, err := s.apply(config.SetPassword{Name: s.user.Name, Password: pw}); err != nil {
		return err
	}
	s.c.printf("password changed\n")
	return nil
}

func tokensCommand() *command {
	return &command{name: "tokens", summary: "API tokens", subs: []*command{
		{name: "list", args: "[--json]", summary: "API tokens (never their secret)", role: config.RoleAdmin, json: true, run: runTokensList},
		{name: "create", args: "NAME admin|operator|viewer", summary: "create a token, shown once", role: config.RoleAdmin, run: runTokensCreate},
		{name: "revoke", args: "NAME", summary: "delete a token", role: config.RoleAdmin, run: runTokensRevoke},
	}}
}

type tokenView struct {
	Name    string    `json:"name"`
	Role    string    `json:"role"`
	Created time.Time `json:"created"`
}

func runTokensList(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) > 0 {
		return usagef("no arguments expected")
	}
	site, err := s.c.opts.Config.Site()
	if err != nil {
		return err
	}
	views := []tokenView{}
	for _, t := range site.Tokens {
		views = append(views, tokenView{t.Name, string(t.Role), t.Created})
	}
	if a.has("json") {
		return s.printJSON(views)
	}
	if len(views) == 0 {
		s.c.printf("no tokens\n")
		return nil
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tCREATED")
	for _, v := range views {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", v.Name, v.Role, s.localTime(v.Created))
	}
	tw.Flush()
	s.c.printf("%s", b.String())
	return nil
}

func runTokensCreate(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 2 {
		return usagef("need NAME and ROLE")
	}
	role, err := parseRole(a.pos[1])
	if err != nil {
		return err
	}
	ch, err := s.apply(config.CreateToken{Name: a.pos[0], Role: role})
	if err != nil {
		return err
	}
	s.c.printf("token %s (%s) created. Copy it now, it is not shown again:\n%s\n", a.pos[0], role, ch.Secret)
	return nil
}

func runTokensRevoke(_ context.Context, s *session, a parsedArgs) error {
	if len(a.pos) != 1 {
		return usagef("need the token NAME")
	}
	if _, err := s.apply(config.RevokeToken{Name: a.pos[0]}); err != nil {
		return err
	}
	s.c.printf("token %s revoked\n", a.pos[0])
	return nil
}

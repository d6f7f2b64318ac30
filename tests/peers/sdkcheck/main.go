// Command sdkcheck calls every operation of coder-api-reference.json through upstream's Go SDK
// (github.com/coder/coder/v2/codersdk, used as a black-box library) against a running server,
// and prints one JSON line per operation:
//
//	{"op":"<operationId>","method":"GET","path":"/users/{user}","ok":true,"error":""}
//
// ok means the call answered the documented success status and its body decoded into
// upstream's own type. Where codersdk has no method for an operation, the call goes through
// client.Request and the body is decoded with encoding/json into the codersdk type the
// reference documents. The program exits 0 even when operations fail: the caller decides.
//
// Usage: CODER_URL=... CODER_SESSION_TOKEN=<an owner's> sdkcheck fixtures.json
//
// Destructive calls come last and act on objects this program creates itself.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/coder/coder/v2/codersdk"
	"github.com/coder/websocket"
)

// Fixtures are the objects the caller made before running this program.
type Fixtures struct {
	// A server with no users yet, for create-initial-user.
	FreshURL string `json:"fresh_url"`
	// The owner whose session token is CODER_SESSION_TOKEN.
	OwnerName     string `json:"owner_name"`
	OwnerEmail    string `json:"owner_email"`
	OwnerPassword string `json:"owner_password"`
	// The default organization.
	OrganizationID uuid.UUID `json:"organization_id"`
	// A member (role member) of the default organization.
	MemberID   uuid.UUID `json:"member_id"`
	MemberName string    `json:"member_name"`
	// An echo template, its active version and the version's import job.
	TemplateID        uuid.UUID `json:"template_id"`
	TemplateName      string    `json:"template_name"`
	ActiveVersionID   uuid.UUID `json:"active_version_id"`
	ActiveVersionName string    `json:"active_version_name"`
	ImportJobID       uuid.UUID `json:"import_job_id"`
	// The uploaded echo archive of the active version.
	FileID uuid.UUID `json:"file_id"`
	// Echo archives whose import (parse) or start blocks until canceled.
	BlockParseFileID uuid.UUID `json:"block_parse_file_id"`
	BlockStartFileID uuid.UUID `json:"block_start_file_id"`
	// A running workspace of the owner, from the template, and its latest build.
	WorkspaceID      uuid.UUID `json:"workspace_id"`
	WorkspaceName    string    `json:"workspace_name"`
	BuildID          uuid.UUID `json:"build_id"`
	BuildNumber      int32     `json:"build_number"`
	GroupID          uuid.UUID `json:"group_id"`
	GroupName        string    `json:"group_name"`
	OrganizationName string    `json:"organization_name"`
}

type result struct {
	Op     string `json:"op"`
	Method string `json:"method"`
	Path   string `json:"path"`
	OK     bool   `json:"ok"`
	Error  string `json:"error"`
	// Where the JSON answer's shape differs from upstream's type although it decoded: fields
	// upstream always sends that are missing, fields upstream's type lacks, null where upstream
	// omits the field or can never send null. Informational: encoding/json accepts all of these.
	Drift []string `json:"drift,omitempty"`
}

var out = json.NewEncoder(os.Stdout)

// check runs one operation and prints its line.
func check(op, method, path string, fn func() error) {
	r := result{Op: op, Method: method, Path: path, OK: true}
	noted = nil
	if err := fn(); err != nil {
		r.OK = false
		r.Error = err.Error()
	}
	if r.OK && noted != nil {
		r.Drift = noted.drift()
	}
	_ = out.Encode(r)
}

// raw sends a request through client.Request, expects status want and decodes the body into
// dst (unless dst is nil).
func raw(ctx context.Context, c *codersdk.Client, method, path string, body any, want int, dst any) error {
	res, err := c.Request(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != want {
		err := codersdk.ReadBodyAsError(res)
		return fmt.Errorf("status %d, want %d: %w", res.StatusCode, want, err)
	}
	if dst == nil {
		return nil
	}
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, dst); err != nil {
		return fmt.Errorf("decoding %T: %w (body %.300s)", dst, err, data)
	}
	note(dst)
	return nil
}

func ptr[T any](v T) *T { return &v }

// must fails the whole program for a setup step (not an operation under test).
func must(what string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "sdkcheck: setup step %q failed: %v\n", what, err)
		os.Exit(2)
	}
}

func waitVersion(ctx context.Context, c *codersdk.Client, id uuid.UUID, done func(codersdk.ProvisionerJobStatus) bool) codersdk.TemplateVersion {
	deadline := time.Now().Add(60 * time.Second)
	for {
		v, err := c.TemplateVersion(ctx, id)
		must("reading a template version", err)
		if done(v.Job.Status) || time.Now().After(deadline) {
			return v
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitDryRun(ctx context.Context, c *codersdk.Client, version, job uuid.UUID, done func(codersdk.ProvisionerJobStatus) bool) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		j, err := c.TemplateVersionDryRun(ctx, version, job)
		must("reading a dry run", err)
		if done(j.Status) || time.Now().After(deadline) {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitBuild(ctx context.Context, c *codersdk.Client, ws uuid.UUID, done func(codersdk.WorkspaceStatus) bool) codersdk.Workspace {
	deadline := time.Now().Add(60 * time.Second)
	for {
		w, err := c.Workspace(ctx, ws)
		must("reading a workspace", err)
		if done(w.LatestBuild.Status) || time.Now().After(deadline) {
			return w
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func ended(s codersdk.ProvisionerJobStatus) bool {
	return s == codersdk.ProvisionerJobSucceeded || s == codersdk.ProvisionerJobFailed || s == codersdk.ProvisionerJobCanceled
}

func started(s codersdk.ProvisionerJobStatus) bool { return s != codersdk.ProvisionerJobPending }

func running(s codersdk.WorkspaceStatus) bool {
	return s == codersdk.WorkspaceStatusRunning || s == codersdk.WorkspaceStatusFailed
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: CODER_URL=... CODER_SESSION_TOKEN=... sdkcheck fixtures.json")
		os.Exit(2)
	}
	data, err := os.ReadFile(os.Args[1])
	must("reading the fixtures", err)
	var f Fixtures
	must("parsing the fixtures", json.Unmarshal(data, &f))
	base, err := url.Parse(os.Getenv("CODER_URL"))
	must("parsing CODER_URL", err)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	anon := codersdk.New(base)
	anon.HTTPClient.Transport = capture{}
	c := codersdk.New(base)
	c.HTTPClient.Transport = capture{}
	c.SetSessionToken(os.Getenv("CODER_SESSION_TOKEN"))
	org := f.OrganizationID
	me := codersdk.Me

	// --- The deployment, anonymous and general. -------------------------------------------
	check("api-root-handler", "GET", "/", func() error {
		var r codersdk.Response
		return raw(ctx, anon, http.MethodGet, "/api/v2/", nil, http.StatusOK, &r)
	})
	check("build-info", "GET", "/buildinfo", func() error {
		v, err := anon.BuildInfo(ctx)
		note(v)
		return err
	})
	check("get-appearance", "GET", "/appearance", func() error {
		v, err := c.Appearance(ctx)
		note(v)
		return err
	})
	check("update-appearance", "PUT", "/appearance", func() error {
		return c.UpdateAppearance(ctx, codersdk.UpdateAppearanceConfig{
			ApplicationName:     "sdkcheck",
			AnnouncementBanners: []codersdk.BannerConfig{},
		})
	})
	check("get-entitlements", "GET", "/entitlements", func() error {
		v, err := c.Entitlements(ctx)
		note(v)
		return err
	})
	check("get-enabled-experiments", "GET", "/experiments", func() error {
		v, err := c.Experiments(ctx)
		note(v)
		return err
	})
	check("update-check", "GET", "/updatecheck", func() error {
		v, err := anon.UpdateCheck(ctx)
		note(v)
		return err
	})
	check("get-authentication-methods", "GET", "/users/authmethods", func() error {
		v, err := anon.AuthMethods(ctx)
		note(v)
		return err
	})
	check("check-initial-user-created", "GET", "/users/first", func() error {
		has, err := anon.HasFirstUser(ctx)
		if err == nil && !has {
			return fmt.Errorf("HasFirstUser answered false on a server with an owner")
		}
		return err
	})
	check("create-initial-user", "POST", "/users/first", func() error {
		fresh, err := url.Parse(f.FreshURL)
		if err != nil {
			return err
		}
		_, err = codersdk.New(fresh).CreateFirstUser(ctx, codersdk.CreateFirstUserRequest{
			Email:    "first@example.com",
			Username: "first",
			Name:     "First User",
			Password: "SomeSecurePassword!1",
		})
		return err
	})
	check("check-authorization", "POST", "/authcheck", func() error {
		r, err := c.AuthCheck(ctx, codersdk.AuthorizationRequest{Checks: map[string]codersdk.AuthorizationCheck{
			"read_templates": {
				Object: codersdk.AuthorizationObject{ResourceType: codersdk.ResourceTemplate, OrganizationID: org.String()},
				Action: codersdk.ActionRead,
			},
		}})
		note(r)
		if err == nil && !r["read_templates"] {
			return fmt.Errorf("an owner may not read templates: %v", r)
		}
		return err
	})
	check("get-site-member-roles", "GET", "/users/roles", func() error {
		v, err := c.ListSiteRoles(ctx)
		note(v)
		return err
	})
	check("validate-user-password", "POST", "/users/validate-password", func() error {
		v, err := c.ValidateUserPassword(ctx, codersdk.ValidateUserPasswordRequest{Password: "x"})
		note(v)
		return err
	})

	// A fresh session of the owner's, logged out at the very end.
	var fresh *codersdk.Client
	check("log-in-user", "POST", "/users/login", func() error {
		r, err := anon.LoginWithPassword(ctx, codersdk.LoginWithPasswordRequest{Email: f.OwnerEmail, Password: f.OwnerPassword})
		note(r)
		if err != nil {
			return err
		}
		fresh = codersdk.New(base)
		fresh.SetSessionToken(r.SessionToken)
		return nil
	})

	// --- Users. ----------------------------------------------------------------------------
	check("get-users", "GET", "/users", func() error {
		r, err := c.Users(ctx, codersdk.UsersRequest{})
		note(r)
		if err == nil && r.Count < 2 {
			return fmt.Errorf("count %d, want at least 2", r.Count)
		}
		return err
	})
	check("get-user-by-name", "GET", "/users/{user}", func() error {
		u, err := c.User(ctx, f.MemberName)
		note(u)
		if err == nil && u.ID != f.MemberID {
			return fmt.Errorf("got user %s, want %s", u.ID, f.MemberID)
		}
		return err
	})
	var throwaway codersdk.User
	check("create-new-user", "POST", "/users", func() error {
		u, err := c.CreateUserWithOrgs(ctx, codersdk.CreateUserRequestWithOrgs{
			Email:           "sdkcheck-throwaway@example.com",
			Username:        "sdkcheck-throwaway",
			Password:        "SomeSecurePassword!1",
			UserLoginType:   codersdk.LoginTypePassword,
			OrganizationIDs: []uuid.UUID{org},
		})
		note(u)
		throwaway = u
		return err
	})
	throwawayName := "sdkcheck-throwaway"
	check("get-user-roles", "GET", "/users/{user}/roles", func() error {
		v, err := c.UserRoles(ctx, me)
		note(v)
		return err
	})
	check("assign-role-to-user", "PUT", "/users/{user}/roles", func() error {
		v, err := c.UpdateUserRoles(ctx, throwawayName, codersdk.UpdateRoles{Roles: []string{codersdk.RoleTemplateAdmin}})
		note(v)
		return err
	})
	check("suspend-user-account", "PUT", "/users/{user}/status/suspend", func() error {
		u, err := c.UpdateUserStatus(ctx, throwawayName, codersdk.UserStatusSuspended)
		note(u)
		if err == nil && u.Status != codersdk.UserStatusSuspended {
			return fmt.Errorf("status %q after suspending", u.Status)
		}
		return err
	})
	check("activate-user-account", "PUT", "/users/{user}/status/activate", func() error {
		u, err := c.UpdateUserStatus(ctx, throwawayName, codersdk.UserStatusActive)
		note(u)
		if err == nil && u.Status != codersdk.UserStatusActive {
			return fmt.Errorf("status %q after activating", u.Status)
		}
		return err
	})
	check("update-user-password", "PUT", "/users/{user}/password", func() error {
		return c.UpdateUserPassword(ctx, throwawayName, codersdk.UpdateUserPasswordRequest{Password: "AnotherSecurePassword!2"})
	})
	check("get-user-git-ssh-key", "GET", "/users/{user}/gitsshkey", func() error {
		v, err := c.GitSSHKey(ctx, me)
		note(v)
		return err
	})
	check("regenerate-user-ssh-key", "PUT", "/users/{user}/gitsshkey", func() error {
		v, err := c.RegenerateGitSSHKey(ctx, me)
		note(v)
		return err
	})
	check("get-organizations-by-user", "GET", "/users/{user}/organizations", func() error {
		v, err := c.OrganizationsByUser(ctx, me)
		note(v)
		return err
	})
	check("get-organization-by-user-and-organization-name", "GET", "/users/{user}/organizations/{organizationname}", func() error {
		o, err := c.OrganizationByUserAndName(ctx, me, f.OrganizationName)
		note(o)
		if err == nil && o.ID != org {
			return fmt.Errorf("got organization %s, want %s", o.ID, org)
		}
		return err
	})

	// --- API keys. -------------------------------------------------------------------------
	check("create-new-session-key", "POST", "/users/{user}/keys", func() error {
		v, err := c.CreateAPIKey(ctx, me)
		note(v)
		return err
	})
	var tokenID string
	check("create-token-api-key", "POST", "/users/{user}/keys/tokens", func() error {
		r, err := c.CreateToken(ctx, me, codersdk.CreateTokenRequest{TokenName: "sdkcheck", Lifetime: 24 * time.Hour})
		note(r)
		if err == nil {
			tokenID, _, _ = strings.Cut(r.Key, "-")
		}
		return err
	})
	check("get-user-tokens", "GET", "/users/{user}/keys/tokens", func() error {
		ks, err := c.Tokens(ctx, me, codersdk.TokensFilter{})
		note(ks)
		if err == nil && len(ks) == 0 {
			return fmt.Errorf("no tokens listed after creating one")
		}
		return err
	})
	check("get-api-key-by-token-name", "GET", "/users/{user}/keys/tokens/{keyname}", func() error {
		k, err := c.APIKeyByName(ctx, me, "sdkcheck")
		note(k)
		if err == nil && k.ID != tokenID {
			return fmt.Errorf("got key %q, want %q", k.ID, tokenID)
		}
		return err
	})
	check("get-api-key-by-id", "GET", "/users/{user}/keys/{keyid}", func() error {
		v, err := c.APIKeyByID(ctx, me, tokenID)
		note(v)
		return err
	})

	// --- Organizations and members. --------------------------------------------------------
	check("get-organizations", "GET", "/organizations", func() error {
		v, err := c.Organizations(ctx)
		note(v)
		return err
	})
	check("get-organization-by-id", "GET", "/organizations/{organization}", func() error {
		v, err := c.Organization(ctx, org)
		note(v)
		return err
	})
	var newOrg codersdk.Organization
	check("create-organization", "POST", "/organizations", func() error {
		o, err := c.CreateOrganization(ctx, codersdk.CreateOrganizationRequest{Name: "sdkcheck-org"})
		note(o)
		newOrg = o
		return err
	})
	check("update-organization", "PATCH", "/organizations/{organization}", func() error {
		v, err := c.UpdateOrganization(ctx, newOrg.ID.String(), codersdk.UpdateOrganizationRequest{DisplayName: "SDK check", Description: ptr("made by sdkcheck")})
		note(v)
		return err
	})
	check("list-organization-members", "GET", "/organizations/{organization}/members", func() error {
		ms, err := c.OrganizationMembers(ctx, org)
		note(ms)
		if err == nil && len(ms) < 2 {
			return fmt.Errorf("%d members, want at least 2", len(ms))
		}
		return err
	})
	check("add-organization-member", "POST", "/organizations/{organization}/members/{user}", func() error {
		v, err := c.PostOrganizationMember(ctx, newOrg.ID, f.MemberName)
		note(v)
		return err
	})
	check("assign-role-to-organization-member", "PUT", "/organizations/{organization}/members/{user}/roles", func() error {
		v, err := c.UpdateOrganizationMemberRoles(ctx, newOrg.ID, f.MemberName, codersdk.UpdateRoles{Roles: []string{codersdk.RoleOrganizationAdmin}})
		note(v)
		return err
	})
	check("remove-organization-member", "DELETE", "/organizations/{organization}/members/{user}", func() error {
		return c.DeleteOrganizationMember(ctx, newOrg.ID, f.MemberName)
	})
	check("get-provisioner-daemons", "GET", "/organizations/{organization}/provisionerdaemons", func() error {
		v, err := c.OrganizationProvisionerDaemons(ctx, org, nil)
		note(v)
		return err
	})
	check("get-provisioner-jobs", "GET", "/organizations/{organization}/provisionerjobs", func() error {
		js, err := c.OrganizationProvisionerJobs(ctx, org, nil)
		note(js)
		if err == nil && len(js) == 0 {
			return fmt.Errorf("no jobs listed")
		}
		return err
	})
	check("get-provisioner-job", "GET", "/organizations/{organization}/provisionerjobs/{job}", func() error {
		v, err := c.OrganizationProvisionerJob(ctx, org, f.ImportJobID)
		note(v)
		return err
	})

	// --- Groups. ---------------------------------------------------------------------------
	check("get-groups", "GET", "/groups", func() error {
		v, err := c.Groups(ctx, codersdk.GroupArguments{Organization: org.String()})
		note(v)
		return err
	})
	check("get-groups-by-organization", "GET", "/organizations/{organization}/groups", func() error {
		v, err := c.GroupsByOrganization(ctx, org)
		note(v)
		return err
	})
	check("get-group-by-id", "GET", "/groups/{group}", func() error {
		v, err := c.Group(ctx, f.GroupID)
		note(v)
		return err
	})
	check("get-group-by-organization-and-group-name", "GET", "/organizations/{organization}/groups/{groupName}", func() error {
		g, err := c.GroupByOrgAndName(ctx, org, f.GroupName)
		note(g)
		if err == nil && g.ID != f.GroupID {
			return fmt.Errorf("got group %s, want %s", g.ID, f.GroupID)
		}
		return err
	})
	var newGroup codersdk.Group
	check("create-group-for-organization", "POST", "/organizations/{organization}/groups", func() error {
		g, err := c.CreateGroup(ctx, org, codersdk.CreateGroupRequest{Name: "sdkcheck-group"})
		note(g)
		newGroup = g
		return err
	})
	check("update-group-by-name", "PATCH", "/groups/{group}", func() error {
		g, err := c.PatchGroup(ctx, newGroup.ID, codersdk.PatchGroupRequest{AddUsers: []string{f.MemberID.String()}, DisplayName: ptr("SDK check")})
		note(g)
		if err == nil && len(g.Members) != 1 {
			return fmt.Errorf("%d members after adding one", len(g.Members))
		}
		return err
	})

	// --- Files. ----------------------------------------------------------------------------
	var archive []byte
	check("get-file-by-id", "GET", "/files/{fileID}", func() error {
		b, _, err := c.Download(ctx, f.FileID)
		archive = b
		if err == nil && len(b) == 0 {
			return fmt.Errorf("empty file")
		}
		return err
	})
	check("upload-file", "POST", "/files", func() error {
		r, err := c.Upload(ctx, codersdk.ContentTypeTar, bytes.NewReader(archive))
		note(r)
		if err == nil && r.ID != f.FileID {
			return fmt.Errorf("the same archive uploaded again got id %s, want %s", r.ID, f.FileID)
		}
		return err
	})

	// --- Templates. ------------------------------------------------------------------------
	tid := f.TemplateID
	check("get-all-templates", "GET", "/templates", func() error {
		ts, err := c.Templates(ctx, codersdk.TemplateFilter{})
		note(ts)
		if err == nil && len(ts) == 0 {
			return fmt.Errorf("no templates")
		}
		return err
	})
	check("get-templates-by-organization", "GET", "/organizations/{organization}/templates", func() error {
		v, err := c.TemplatesByOrganization(ctx, org)
		note(v)
		return err
	})
	check("get-template-examples", "GET", "/templates/examples", func() error {
		v, err := c.StarterTemplates(ctx)
		note(v)
		return err
	})
	check("get-template-examples-by-organization", "GET", "/organizations/{organization}/templates/examples", func() error {
		var r []codersdk.TemplateExample
		return raw(ctx, c, http.MethodGet, fmt.Sprintf("/api/v2/organizations/%s/templates/examples", org), nil, http.StatusOK, &r)
	})
	check("get-templates-by-organization-and-template-name", "GET", "/organizations/{organization}/templates/{templatename}", func() error {
		t, err := c.TemplateByName(ctx, org, f.TemplateName)
		note(t)
		if err == nil && t.ID != tid {
			return fmt.Errorf("got template %s, want %s", t.ID, tid)
		}
		return err
	})
	check("get-template-settings-by-id", "GET", "/templates/{template}", func() error {
		v, err := c.Template(ctx, tid)
		note(v)
		return err
	})
	check("get-template-acls", "GET", "/templates/{template}/acl", func() error {
		v, err := c.TemplateACL(ctx, tid)
		note(v)
		return err
	})
	check("update-template-acl", "PATCH", "/templates/{template}/acl", func() error {
		return c.UpdateTemplateACL(ctx, tid, codersdk.UpdateTemplateACL{UserPerms: map[string]codersdk.TemplateRole{f.MemberID.String(): codersdk.TemplateRoleUse}})
	})
	check("get-template-available-acl-usersgroups", "GET", "/templates/{template}/acl/available", func() error {
		v, err := c.TemplateACLAvailable(ctx, tid)
		note(v)
		return err
	})
	check("get-template-daus-by-id", "GET", "/templates/{template}/daus", func() error {
		v, err := c.TemplateDAUs(ctx, tid, 0)
		note(v)
		return err
	})
	check("list-template-versions-by-template-id", "GET", "/templates/{template}/versions", func() error {
		v, err := c.TemplateVersionsByTemplate(ctx, codersdk.TemplateVersionsByTemplateRequest{TemplateID: tid})
		note(v)
		return err
	})
	check("get-template-version-by-template-id-and-name", "GET", "/templates/{template}/versions/{templateversionname}", func() error {
		v, err := c.TemplateVersionByName(ctx, tid, f.ActiveVersionName)
		note(v)
		if err == nil && v.ID != f.ActiveVersionID {
			return fmt.Errorf("got version %s, want %s", v.ID, f.ActiveVersionID)
		}
		return err
	})
	check("get-template-version-by-organization-template-and-name", "GET", "/organizations/{organization}/templates/{templatename}/versions/{templateversionname}", func() error {
		v, err := c.TemplateVersionByOrganizationAndName(ctx, org, f.TemplateName, f.ActiveVersionName)
		note(v)
		return err
	})
	check("get-template-version-by-id", "GET", "/templateversions/{templateversion}", func() error {
		v, err := c.TemplateVersion(ctx, f.ActiveVersionID)
		note(v)
		return err
	})
	// A second version of the template whose builds block until canceled.
	var v2 codersdk.TemplateVersion
	check("create-template-version-by-organization", "POST", "/organizations/{organization}/templateversions", func() error {
		v, err := c.CreateTemplateVersion(ctx, org, codersdk.CreateTemplateVersionRequest{
			TemplateID:    tid,
			StorageMethod: codersdk.ProvisionerStorageMethodFile,
			FileID:        f.BlockStartFileID,
			Provisioner:   codersdk.ProvisionerTypeEcho,
		})
		note(v)
		v2 = v
		return err
	})
	if v2.ID != uuid.Nil {
		v2 = waitVersion(ctx, c, v2.ID, ended)
	}
	check("get-previous-template-version-by-organization-template-and-name", "GET", "/organizations/{organization}/templates/{templatename}/versions/{templateversionname}/previous", func() error {
		v, err := c.PreviousTemplateVersion(ctx, org, f.TemplateName, v2.Name)
		note(v)
		if err == nil && v.ID != f.ActiveVersionID {
			return fmt.Errorf("got version %s, want %s", v.ID, f.ActiveVersionID)
		}
		return err
	})
	check("patch-template-version-by-id", "PATCH", "/templateversions/{templateversion}", func() error {
		v, err := c.UpdateTemplateVersion(ctx, v2.ID, codersdk.PatchTemplateVersionRequest{Name: v2.Name, Message: ptr("blocks on start")})
		note(v)
		return err
	})
	check("update-active-template-version-by-template-id", "PATCH", "/templates/{template}/versions", func() error {
		return c.UpdateActiveTemplateVersion(ctx, tid, codersdk.UpdateActiveTemplateVersion{ID: f.ActiveVersionID})
	})
	av := f.ActiveVersionID
	check("get-logs-by-template-version", "GET", "/templateversions/{templateversion}/logs", func() error {
		var r []codersdk.ProvisionerJobLog
		return raw(ctx, c, http.MethodGet, fmt.Sprintf("/api/v2/templateversions/%s/logs", av), nil, http.StatusOK, &r)
	})
	check("get-resources-by-template-version", "GET", "/templateversions/{templateversion}/resources", func() error {
		v, err := c.TemplateVersionResources(ctx, av)
		note(v)
		return err
	})
	check("get-rich-parameters-by-template-version", "GET", "/templateversions/{templateversion}/rich-parameters", func() error {
		v, err := c.TemplateVersionRichParameters(ctx, av)
		note(v)
		return err
	})
	check("get-template-variables-by-template-version", "GET", "/templateversions/{templateversion}/variables", func() error {
		v, err := c.TemplateVersionVariables(ctx, av)
		note(v)
		return err
	})
	check("get-external-auth-by-template-version", "GET", "/templateversions/{templateversion}/external-auth", func() error {
		v, err := c.TemplateVersionExternalAuth(ctx, av)
		note(v)
		return err
	})
	check("get-template-version-presets", "GET", "/templateversions/{templateversion}/presets", func() error {
		v, err := c.TemplateVersionPresets(ctx, av)
		note(v)
		return err
	})
	// Removed upstream; the reference documents a 200 with no body schema.
	check("removed-get-parameters-by-template-version", "GET", "/templateversions/{templateversion}/parameters", func() error {
		var r any
		return raw(ctx, c, http.MethodGet, fmt.Sprintf("/api/v2/templateversions/%s/parameters", av), nil, http.StatusOK, &r)
	})
	check("removed-get-schema-by-template-version", "GET", "/templateversions/{templateversion}/schema", func() error {
		var r any
		return raw(ctx, c, http.MethodGet, fmt.Sprintf("/api/v2/templateversions/%s/schema", av), nil, http.StatusOK, &r)
	})
	check("open-dynamic-parameters-websocket-by-template-version", "GET", "/templateversions/{templateversion}/dynamic-parameters", func() error {
		s, err := c.TemplateVersionDynamicParameters(ctx, me, av)
		if err != nil {
			return err
		}
		defer s.Close(websocket.StatusNormalClosure)
		select {
		case _, ok := <-s.Chan():
			if !ok {
				return fmt.Errorf("the stream closed before its first answer (or it did not decode)")
			}
			return nil
		case <-time.After(10 * time.Second):
			return fmt.Errorf("no first answer within 10s")
		}
	})
	check("evaluate-dynamic-parameters-for-template-version", "POST", "/templateversions/{templateversion}/dynamic-parameters/evaluate", func() error {
		var r codersdk.DynamicParametersResponse
		return raw(ctx, c, http.MethodPost, fmt.Sprintf("/api/v2/templateversions/%s/dynamic-parameters/evaluate", av),
			codersdk.DynamicParametersRequest{ID: 1, Inputs: map[string]string{}}, http.StatusOK, &r)
	})

	// Dry runs: one that finishes, one that blocks and is canceled.
	var dry codersdk.ProvisionerJob
	check("create-template-version-dry-run", "POST", "/templateversions/{templateversion}/dry-run", func() error {
		j, err := c.CreateTemplateVersionDryRun(ctx, av, codersdk.CreateTemplateVersionDryRunRequest{WorkspaceName: "dry", RichParameterValues: []codersdk.WorkspaceBuildParameter{}})
		dry = j
		return err
	})
	if dry.ID != uuid.Nil {
		waitDryRun(ctx, c, av, dry.ID, ended)
	}
	check("get-template-version-dry-run-by-job-id", "GET", "/templateversions/{templateversion}/dry-run/{jobID}", func() error {
		j, err := c.TemplateVersionDryRun(ctx, av, dry.ID)
		note(j)
		if err == nil && j.Status != codersdk.ProvisionerJobSucceeded {
			return fmt.Errorf("dry run %s: %s", j.Status, j.Error)
		}
		return err
	})
	check("get-template-version-dry-run-logs-by-job-id", "GET", "/templateversions/{templateversion}/dry-run/{jobID}/logs", func() error {
		var r []codersdk.ProvisionerJobLog
		return raw(ctx, c, http.MethodGet, fmt.Sprintf("/api/v2/templateversions/%s/dry-run/%s/logs", av, dry.ID), nil, http.StatusOK, &r)
	})
	check("get-template-version-dry-run-matched-provisioners", "GET", "/templateversions/{templateversion}/dry-run/{jobID}/matched-provisioners", func() error {
		v, err := c.TemplateVersionDryRunMatchedProvisioners(ctx, av, dry.ID)
		note(v)
		return err
	})
	check("get-template-version-dry-run-resources-by-job-id", "GET", "/templateversions/{templateversion}/dry-run/{jobID}/resources", func() error {
		v, err := c.TemplateVersionDryRunResources(ctx, av, dry.ID)
		note(v)
		return err
	})
	check("cancel-template-version-dry-run-by-job-id", "PATCH", "/templateversions/{templateversion}/dry-run/{jobID}/cancel", func() error {
		j, err := c.CreateTemplateVersionDryRun(ctx, v2.ID, codersdk.CreateTemplateVersionDryRunRequest{WorkspaceName: "dry-block", RichParameterValues: []codersdk.WorkspaceBuildParameter{}})
		if err != nil {
			return fmt.Errorf("setup: creating a blocking dry run: %w", err)
		}
		waitDryRun(ctx, c, v2.ID, j.ID, started)
		return c.CancelTemplateVersionDryRun(ctx, v2.ID, j.ID)
	})
	check("cancel-template-version-by-id", "PATCH", "/templateversions/{templateversion}/cancel", func() error {
		v, err := c.CreateTemplateVersion(ctx, org, codersdk.CreateTemplateVersionRequest{
			TemplateID:    tid,
			StorageMethod: codersdk.ProvisionerStorageMethodFile,
			FileID:        f.BlockParseFileID,
			Provisioner:   codersdk.ProvisionerTypeEcho,
		})
		if err != nil {
			return fmt.Errorf("setup: creating a blocking version: %w", err)
		}
		waitVersion(ctx, c, v.ID, started)
		return c.CancelTemplateVersion(ctx, v.ID)
	})

	// A throwaway template, deleted at the end.
	var tmp codersdk.Template
	check("create-template-by-organization", "POST", "/organizations/{organization}/templates", func() error {
		v, err := c.CreateTemplateVersion(ctx, org, codersdk.CreateTemplateVersionRequest{
			StorageMethod: codersdk.ProvisionerStorageMethodFile,
			FileID:        f.FileID,
			Provisioner:   codersdk.ProvisionerTypeEcho,
		})
		if err != nil {
			return fmt.Errorf("setup: creating a version: %w", err)
		}
		waitVersion(ctx, c, v.ID, ended)
		t, err := c.CreateTemplate(ctx, org, codersdk.CreateTemplateRequest{Name: "sdkcheck-tmp", VersionID: v.ID})
		note(t)
		tmp = t
		return err
	})
	check("update-template-settings-by-id", "PATCH", "/templates/{template}", func() error {
		t, err := c.UpdateTemplateMeta(ctx, tmp.ID, codersdk.UpdateTemplateMeta{Description: ptr("made by sdkcheck"), DisplayName: ptr("SDK check")})
		note(t)
		if err == nil && t.Description != "made by sdkcheck" {
			return fmt.Errorf("description %q after the update", t.Description)
		}
		return err
	})

	// --- Workspaces. -----------------------------------------------------------------------
	wid := f.WorkspaceID
	check("list-workspaces", "GET", "/workspaces", func() error {
		r, err := c.Workspaces(ctx, codersdk.WorkspaceFilter{})
		note(r)
		if err == nil && r.Count == 0 {
			return fmt.Errorf("no workspaces")
		}
		return err
	})
	check("get-workspace-metadata-by-id", "GET", "/workspaces/{workspace}", func() error {
		v, err := c.Workspace(ctx, wid)
		note(v)
		return err
	})
	check("get-workspace-metadata-by-user-and-workspace-name", "GET", "/users/{user}/workspace/{workspacename}", func() error {
		w, err := c.WorkspaceByOwnerAndName(ctx, f.OwnerName, f.WorkspaceName, codersdk.WorkspaceOptions{})
		note(w)
		if err == nil && w.ID != wid {
			return fmt.Errorf("got workspace %s, want %s", w.ID, wid)
		}
		return err
	})
	check("get-workspace-builds-by-workspace-id", "GET", "/workspaces/{workspace}/builds", func() error {
		v, err := c.WorkspaceBuilds(ctx, codersdk.WorkspaceBuildsRequest{WorkspaceID: wid})
		note(v)
		return err
	})
	check("get-workspace-build", "GET", "/workspacebuilds/{workspacebuild}", func() error {
		v, err := c.WorkspaceBuild(ctx, f.BuildID)
		note(v)
		return err
	})
	check("get-workspace-build-by-user-workspace-name-and-build-number", "GET", "/users/{user}/workspace/{workspacename}/builds/{buildnumber}", func() error {
		b, err := c.WorkspaceBuildByUsernameAndWorkspaceNameAndBuildNumber(ctx, f.OwnerName, f.WorkspaceName, fmt.Sprint(f.BuildNumber))
		note(b)
		if err == nil && b.ID != f.BuildID {
			return fmt.Errorf("got build %s, want %s", b.ID, f.BuildID)
		}
		return err
	})
	check("get-workspace-build-logs", "GET", "/workspacebuilds/{workspacebuild}/logs", func() error {
		var r []codersdk.ProvisionerJobLog
		return raw(ctx, c, http.MethodGet, fmt.Sprintf("/api/v2/workspacebuilds/%s/logs", f.BuildID), nil, http.StatusOK, &r)
	})
	check("get-build-parameters-for-workspace-build", "GET", "/workspacebuilds/{workspacebuild}/parameters", func() error {
		v, err := c.WorkspaceBuildParameters(ctx, f.BuildID)
		note(v)
		return err
	})
	check("removed-get-workspace-resources-for-workspace-build", "GET", "/workspacebuilds/{workspacebuild}/resources", func() error {
		var r []codersdk.WorkspaceResource
		return raw(ctx, c, http.MethodGet, fmt.Sprintf("/api/v2/workspacebuilds/%s/resources", f.BuildID), nil, http.StatusOK, &r)
	})
	check("get-provisioner-state-for-workspace-build", "GET", "/workspacebuilds/{workspacebuild}/state", func() error {
		_, err := c.WorkspaceBuildState(ctx, f.BuildID)
		return err
	})
	check("get-workspace-build-timings-by-id", "GET", "/workspacebuilds/{workspacebuild}/timings", func() error {
		v, err := c.WorkspaceBuildTimings(ctx, f.BuildID)
		note(v)
		return err
	})
	check("get-workspace-timings-by-id", "GET", "/workspaces/{workspace}/timings", func() error {
		v, err := c.WorkspaceTimings(ctx, wid)
		note(v)
		return err
	})
	check("resolve-workspace-autostart-by-id", "GET", "/workspaces/{workspace}/resolve-autostart", func() error {
		v, err := c.ResolveAutostart(ctx, wid.String())
		note(v)
		return err
	})
	check("get-workspace-acls", "GET", "/workspaces/{workspace}/acl", func() error {
		v, err := c.WorkspaceACL(ctx, wid)
		note(v)
		return err
	})
	check("watch-workspace-by-id", "GET", "/workspaces/{workspace}/watch", func() error {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		ch, err := c.WatchWorkspace(wctx, wid)
		if err != nil {
			return err
		}
		w, ok := <-ch
		if !ok {
			return fmt.Errorf("no workspace event decoded within 10s")
		}
		if w.ID != wid {
			return fmt.Errorf("event for workspace %s, want %s", w.ID, wid)
		}
		return nil
	})
	check("watch-workspace-by-id-via-websockets", "GET", "/workspaces/{workspace}/watch-ws", func() error {
		wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
		defer wcancel()
		conn, err := c.Dial(wctx, fmt.Sprintf("/api/v2/workspaces/%s/watch-ws", wid), nil)
		if err != nil {
			return err
		}
		defer conn.Close(websocket.StatusNormalClosure, "")
		for {
			_, msg, err := conn.Read(wctx)
			if err != nil {
				return fmt.Errorf("reading the first data event: %w", err)
			}
			var ev codersdk.ServerSentEvent
			if err := json.Unmarshal(msg, &ev); err != nil {
				return fmt.Errorf("decoding %T: %w (message %.300s)", ev, err, msg)
			}
			if ev.Type != codersdk.ServerSentEventTypeData {
				continue
			}
			d, _ := json.Marshal(ev.Data)
			var w codersdk.Workspace
			if err := json.Unmarshal(d, &w); err != nil {
				return fmt.Errorf("decoding the event's data as %T: %w", w, err)
			}
			if w.ID != wid {
				return fmt.Errorf("event for workspace %s, want %s", w.ID, wid)
			}
			return nil
		}
	})
	check("post-workspace-usage-by-id", "POST", "/workspaces/{workspace}/usage", func() error {
		return c.PostWorkspaceUsage(ctx, wid)
	})
	check("favorite-workspace-by-id", "PUT", "/workspaces/{workspace}/favorite", func() error {
		return c.FavoriteWorkspace(ctx, wid)
	})
	check("unfavorite-workspace-by-id", "DELETE", "/workspaces/{workspace}/favorite", func() error {
		return c.UnfavoriteWorkspace(ctx, wid)
	})

	// Throwaway workspaces: one through /users/{user}/workspaces (with a TTL, so it has a
	// deadline to extend), one through the organization's route (its build gets canceled).
	var wsA, wsB codersdk.Workspace
	check("create-user-workspace", "POST", "/users/{user}/workspaces", func() error {
		w, err := c.CreateUserWorkspace(ctx, me, codersdk.CreateWorkspaceRequest{TemplateID: tid, Name: "sdk-a", TTLMillis: ptr(int64(time.Hour / time.Millisecond))})
		note(w)
		wsA = w
		return err
	})
	check("create-user-workspace-by-organization", "POST", "/organizations/{organization}/members/{user}/workspaces", func() error {
		// The reference documents 200, but upstream's handler (the one behind
		// create-user-workspace too, for which codersdk requires 201) answers 201 Created.
		var w codersdk.Workspace
		err := raw(ctx, c, http.MethodPost, fmt.Sprintf("/api/v2/organizations/%s/members/%s/workspaces", org, me),
			codersdk.CreateWorkspaceRequest{TemplateID: tid, Name: "sdk-b"}, http.StatusCreated, &w)
		wsB = w
		return err
	})
	// Without them the calls below have nothing to act on: make them the plain way.
	if wsA.ID == uuid.Nil {
		w, err := c.CreateUserWorkspace(ctx, me, codersdk.CreateWorkspaceRequest{TemplateID: tid, Name: "sdk-a2", TTLMillis: ptr(int64(time.Hour / time.Millisecond))})
		note(w)
		must("creating a throwaway workspace", err)
		wsA = w
	}
	if wsB.ID == uuid.Nil {
		w, err := c.CreateUserWorkspace(ctx, me, codersdk.CreateWorkspaceRequest{TemplateID: tid, Name: "sdk-b2"})
		note(w)
		must("creating a throwaway workspace", err)
		wsB = w
	}
	wsA = waitBuild(ctx, c, wsA.ID, running)
	wsB = waitBuild(ctx, c, wsB.ID, running)

	check("update-workspace-metadata-by-id", "PATCH", "/workspaces/{workspace}", func() error {
		return c.UpdateWorkspace(ctx, wsA.ID, codersdk.UpdateWorkspaceRequest{Name: "sdk-renamed"})
	})
	check("update-workspace-autostart-schedule-by-id", "PUT", "/workspaces/{workspace}/autostart", func() error {
		return c.UpdateWorkspaceAutostart(ctx, wsA.ID, codersdk.UpdateWorkspaceAutostartRequest{Schedule: ptr("CRON_TZ=UTC 30 9 * * 1-5")})
	})
	check("update-workspace-automatic-updates-by-id", "PUT", "/workspaces/{workspace}/autoupdates", func() error {
		return c.UpdateWorkspaceAutomaticUpdates(ctx, wsA.ID, codersdk.UpdateWorkspaceAutomaticUpdatesRequest{AutomaticUpdates: codersdk.AutomaticUpdatesAlways})
	})
	check("extend-workspace-deadline-by-id", "PUT", "/workspaces/{workspace}/extend", func() error {
		return c.PutExtendWorkspace(ctx, wsA.ID, codersdk.PutExtendWorkspaceRequest{Deadline: time.Now().Add(2 * time.Hour).UTC()})
	})
	check("update-workspace-ttl-by-id", "PUT", "/workspaces/{workspace}/ttl", func() error {
		return c.UpdateWorkspaceTTL(ctx, wsA.ID, codersdk.UpdateWorkspaceTTLRequest{TTLMillis: ptr(int64(2 * time.Hour / time.Millisecond))})
	})
	check("update-workspace-acl", "PATCH", "/workspaces/{workspace}/acl", func() error {
		return c.UpdateWorkspaceACL(ctx, wsA.ID, codersdk.UpdateWorkspaceACL{UserRoles: map[string]codersdk.WorkspaceRole{f.MemberID.String(): codersdk.WorkspaceRoleUse}})
	})
	check("completely-clears-the-workspaces-user-and-group-acls", "DELETE", "/workspaces/{workspace}/acl", func() error {
		return c.DeleteWorkspaceACL(ctx, wsA.ID)
	})
	check("update-workspace-build-state", "PUT", "/workspacebuilds/{workspacebuild}/state", func() error {
		return c.UpdateWorkspaceBuildState(ctx, wsA.LatestBuild.ID, []byte(`{"sdkcheck":true}`))
	})
	check("update-workspace-dormancy-status-by-id", "PUT", "/workspaces/{workspace}/dormant", func() error {
		return c.UpdateWorkspaceDormancy(ctx, wsA.ID, codersdk.UpdateWorkspaceDormancy{Dormant: true})
	})
	check("create-workspace-build", "POST", "/workspaces/{workspace}/builds", func() error {
		b, err := c.CreateWorkspaceBuild(ctx, wsB.ID, codersdk.CreateWorkspaceBuildRequest{Transition: codersdk.WorkspaceTransitionStart, TemplateVersionID: v2.ID})
		note(b)
		if err == nil && b.TemplateVersionID != v2.ID {
			return fmt.Errorf("the build has version %s, want %s", b.TemplateVersionID, v2.ID)
		}
		return err
	})
	check("cancel-workspace-build", "PATCH", "/workspacebuilds/{workspacebuild}/cancel", func() error {
		w := waitBuild(ctx, c, wsB.ID, func(s codersdk.WorkspaceStatus) bool { return s != codersdk.WorkspaceStatusPending })
		return c.CancelWorkspaceBuild(ctx, w.LatestBuild.ID, codersdk.CancelWorkspaceBuildParams{})
	})
	check("archive-template-version", "POST", "/templateversions/{templateversion}/archive", func() error {
		return c.SetArchiveTemplateVersion(ctx, v2.ID, true)
	})
	check("unarchive-template-version", "POST", "/templateversions/{templateversion}/unarchive", func() error {
		return c.SetArchiveTemplateVersion(ctx, v2.ID, false)
	})
	check("archive-template-unused-versions-by-template-id", "POST", "/templates/{template}/versions/archive", func() error {
		v, err := c.ArchiveTemplateVersions(ctx, tid, false)
		note(v)
		return err
	})

	// --- Destructive, on what this program made. -------------------------------------------
	check("delete-api-key", "DELETE", "/users/{user}/keys/{keyid}", func() error {
		return c.DeleteAPIKey(ctx, me, tokenID)
	})
	check("delete-group-by-name", "DELETE", "/groups/{group}", func() error {
		return c.DeleteGroup(ctx, newGroup.ID)
	})
	check("delete-template-by-id", "DELETE", "/templates/{template}", func() error {
		return c.DeleteTemplate(ctx, tmp.ID)
	})
	check("delete-organization", "DELETE", "/organizations/{organization}", func() error {
		return c.DeleteOrganization(ctx, newOrg.ID.String())
	})
	check("delete-user", "DELETE", "/users/{user}", func() error {
		return c.DeleteUser(ctx, throwaway.ID)
	})
	check("log-out-user", "POST", "/users/logout", func() error {
		if fresh == nil {
			return fmt.Errorf("no fresh session (log-in-user failed)")
		}
		if err := fresh.Logout(ctx); err != nil {
			return err
		}
		if _, err := fresh.User(ctx, me); err == nil {
			return fmt.Errorf("the session still works after logging out")
		}
		return nil
	})
}

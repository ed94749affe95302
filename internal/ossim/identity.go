package ossim

import (
	"fmt"
	"net/http"
	"slices"
	"time"
)

// token is an issued Keystone token.
type token struct {
	id        string
	methods   []string
	project   string
	projectID string
	user      string
	userID    string
	issued    time.Time
	expires   time.Time
}

var identityRoutes = []route{
	{pattern: "GET " + identityPrefix, op: "Versions", svc: svcIdentity, public: true, h: (*Server).identityVersions},
	{pattern: "GET " + identityPrefix + "/{$}", op: "Versions", svc: svcIdentity, public: true, h: (*Server).identityVersions},
	{pattern: "GET " + identityPrefix + "/v3", op: "Versions", svc: svcIdentity, public: true, h: (*Server).identityVersion},
	{pattern: "GET " + identityPrefix + "/v3/{$}", op: "Versions", svc: svcIdentity, public: true, h: (*Server).identityVersion},
	{pattern: "POST " + identityPrefix + "/v3/auth/tokens", op: "Authenticate", svc: svcIdentity, public: true, h: (*Server).authenticate},
	{pattern: "GET " + identityPrefix + "/v3/auth/tokens", op: "ValidateToken", svc: svcIdentity, h: (*Server).validateToken},
	{pattern: "DELETE " + identityPrefix + "/v3/auth/tokens", op: "RevokeToken", svc: svcIdentity, h: (*Server).revokeToken},
}

func (s *Server) identityV3Doc(c *call) map[string]any {
	return versionDoc("v3.14", "stable", c.base+identityPrefix+"/v3/", map[string]any{
		"media-types": []map[string]string{{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}},
	})
}

func (s *Server) identityVersions(c *call) (*result, *apiError) {
	return &result{status: http.StatusMultipleChoices, body: map[string]any{
		"versions": map[string]any{"values": []any{s.identityV3Doc(c)}},
	}}, nil
}

func (s *Server) identityVersion(c *call) (*result, *apiError) {
	return ok(map[string]any{"version": s.identityV3Doc(c)})
}

type authName struct {
	ID     string    `json:"id"`
	Name   string    `json:"name"`
	Domain *authName `json:"domain"`
}

type authRequest struct {
	Auth struct {
		Identity struct {
			Methods  []string `json:"methods"`
			Password *struct {
				User struct {
					authName
					Password string `json:"password"`
				} `json:"user"`
			} `json:"password"`
			ApplicationCredential *struct {
				ID     string    `json:"id"`
				Name   string    `json:"name"`
				Secret string    `json:"secret"`
				User   *authName `json:"user"`
			} `json:"application_credential"`
			Token *struct {
				ID string `json:"id"`
			} `json:"token"`
		} `json:"identity"`
		Scope *struct {
			Project *authName `json:"project"`
			Domain  *authName `json:"domain"`
			System  any       `json:"system"`
		} `json:"scope"`
	} `json:"auth"`
}

// authenticate issues a token for any well-formed credentials: passwords (with a
// user id, or a name and its domain), application credentials (an id, or a name and
// its user) and existing tokens. The project comes from the scope; application
// credentials and unscoped requests get DefaultProject.
func (s *Server) authenticate(c *call) (*result, *apiError) {
	var req authRequest
	if e := c.decode(&req); e != nil {
		return nil, e
	}
	id := req.Auth.Identity
	if len(id.Methods) == 0 {
		return nil, badRequest("Invalid input for field 'identity': 'methods' is a required property")
	}
	tok := &token{methods: id.Methods, project: DefaultProject, user: "admin"}
	for _, m := range id.Methods {
		switch m {
		case "password":
			p := id.Password
			if p == nil || p.User.Password == "" || (p.User.ID == "" && p.User.Name == "") {
				return nil, unauthorized()
			}
			if p.User.ID == "" && (p.User.Domain == nil || (p.User.Domain.ID == "" && p.User.Domain.Name == "")) {
				return nil, badRequest("Expecting to find domain in user. The server could not comply with the request since it is either malformed or otherwise incorrect.")
			}
			tok.user = firstNonEmpty(p.User.Name, p.User.ID)
		case "application_credential":
			a := id.ApplicationCredential
			if a == nil || a.Secret == "" || (a.ID == "" && (a.Name == "" || a.User == nil)) {
				return nil, unauthorized()
			}
			if a.User != nil {
				tok.user = firstNonEmpty(a.User.Name, a.User.ID)
			}
		case "token":
			if id.Token == nil {
				return nil, unauthorized()
			}
			old := s.tokens[id.Token.ID]
			if old == nil || !c.now.Before(old.expires) {
				return nil, notFound("NotFound", fmt.Sprintf("Could not find token: %s.", id.Token.ID))
			}
			tok.user, tok.project = old.user, old.project
		default:
			return nil, unauthorized()
		}
	}
	if sc := req.Auth.Scope; sc != nil && sc.Project != nil {
		if sc.Project.ID == "" && sc.Project.Name == "" {
			return nil, badRequest("Invalid input for field 'scope': project needs an id or a name")
		}
		if sc.Project.ID == "" && (sc.Project.Domain == nil || (sc.Project.Domain.ID == "" && sc.Project.Domain.Name == "")) {
			return nil, badRequest("Expecting to find domain in project. The server could not comply with the request since it is either malformed or otherwise incorrect.")
		}
		tok.project = firstNonEmpty(sc.Project.Name, sc.Project.ID)
	}
	tok.projectID = projectID(tok.project)
	tok.userID = hashID("user:" + tok.user)
	tok.issued = c.now
	tok.expires = c.now.Add(s.opts.TokenTTL)
	s.seq++
	tok.id = fmt.Sprintf("gAAAAAB%s%08x", hashID(fmt.Sprint("token", s.seq, c.now.UnixNano())), s.seq)
	s.tokens[tok.id] = tok
	s.projects[tok.project]++
	return &result{
		status: http.StatusCreated,
		body:   map[string]any{"token": s.tokenBody(c, tok)},
		header: map[string]string{"X-Subject-Token": tok.id},
	}, nil
}

func (s *Server) validateToken(c *call) (*result, *apiError) {
	id := c.r.Header.Get("X-Subject-Token")
	tok := s.tokens[id]
	if tok == nil || !c.now.Before(tok.expires) {
		return nil, notFound("NotFound", fmt.Sprintf("Could not find token: %s.", id))
	}
	return &result{status: http.StatusOK, body: map[string]any{"token": s.tokenBody(c, tok)},
		header: map[string]string{"X-Subject-Token": tok.id}}, nil
}

func (s *Server) revokeToken(c *call) (*result, *apiError) {
	id := c.r.Header.Get("X-Subject-Token")
	if s.tokens[id] == nil {
		return nil, notFound("NotFound", fmt.Sprintf("Could not find token: %s.", id))
	}
	delete(s.tokens, id)
	return noContent()
}

func (s *Server) tokenBody(c *call, tok *token) map[string]any {
	domain := map[string]string{"id": "default", "name": "Default"}
	return map[string]any{
		"methods":    tok.methods,
		"audit_ids":  []string{tok.id[len(tok.id)-8:]},
		"issued_at":  tok.issued.UTC().Format(cinderTime) + "Z",
		"expires_at": tok.expires.UTC().Format(cinderTime) + "Z",
		"user":       map[string]any{"id": tok.userID, "name": tok.user, "domain": domain, "password_expires_at": nil},
		"project":    map[string]any{"id": tok.projectID, "name": tok.project, "domain": domain},
		"is_domain":  false,
		"roles": []map[string]string{
			{"id": hashID("role:member"), "name": "member"},
			{"id": hashID("role:reader"), "name": "reader"},
		},
		"catalog": s.catalog(c.base, tok.projectID),
	}
}

// catalog returns the service catalog: every service at a path of base, with public
// and internal interfaces in the server's region.
func (s *Server) catalog(base, project string) []map[string]any {
	entry := func(typ, name, url string) map[string]any {
		var eps []map[string]string
		for _, iface := range []string{"public", "internal"} {
			eps = append(eps, map[string]string{
				"id": hashID(typ + iface), "interface": iface, "region": s.opts.Region, "region_id": s.opts.Region, "url": url,
			})
		}
		return map[string]any{"id": hashID("service:" + typ), "type": typ, "name": name, "endpoints": eps}
	}
	return []map[string]any{
		entry("identity", "keystone", base+identityPrefix),
		entry("compute", "nova", base+computePrefix),
		entry("image", "glance", base+imagePrefix),
		entry("network", "neutron", base+networkPrefix),
		entry("block-storage", "cinder", base+volumePrefix+"/"+project),
		entry("volumev3", "cinderv3", base+volumePrefix+"/"+project),
	}
}

// projectID is the id of a project name (names that already look like ids are their
// own id).
func projectID(name string) string {
	if len(name) == 32 && !slices.ContainsFunc([]byte(name), func(b byte) bool {
		return !(b >= '0' && b <= '9' || b >= 'a' && b <= 'f')
	}) {
		return name
	}
	id := hashID("project:" + name)
	out := make([]byte, 0, 32)
	for i := 0; i < len(id); i++ {
		if id[i] != '-' {
			out = append(out, id[i])
		}
	}
	return string(out)
}

func firstNonEmpty(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

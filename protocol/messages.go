package protocol

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// Limits. Frames are capped well below x/crypto/ssh/agent's 16 MiB so that a
// client cannot make the agent allocate much before it has been checked.
const (
	MaxFrame        = 256 << 10 // largest request frame the agent accepts, header excluded
	MaxReply        = 16 << 20  // largest reply a client accepts (a list of many credentials)
	MaxNameLen      = 64        // provider and kind names
	MaxFields       = 16        // fields in one credential
	MaxFieldNameLen = 32
	MaxValueLen     = 64 << 10 // one field value
	MaxTextLen      = 4096     // free text: paths, hostnames, messages
	MaxHops         = 8        // hops in one destination chain
	MaxChains       = 16       // destination chains in one constraint
	MaxHostKeys     = 16       // host keys per hop
)

// SSH agent message numbers (draft-miller-ssh-agent section 5.1).
const (
	MsgFailure                 = 5
	MsgSuccess                 = 6
	MsgRequestIdentities       = 11
	MsgIdentitiesAnswer        = 12
	MsgSignRequest             = 13
	MsgAddIdentity             = 17
	MsgRemoveIdentity          = 18
	MsgRemoveAllIdentities     = 19
	MsgAddSmartcardKey         = 20
	MsgRemoveSmartcardKey      = 21
	MsgLock                    = 22
	MsgUnlock                  = 23
	MsgAddIDConstrained        = 25
	MsgAddSmartcardConstrained = 26
	MsgExtension               = 27
	MsgExtensionFailure        = 28
	// MsgExtensionResponse is SSH_AGENT_EXTENSION_RESPONSE from newer
	// drafts of the agent protocol; clients accept it like SUCCESS.
	MsgExtensionResponse = 29
)

// Extension names. The llm-agent ones live in the "@llm-agent" namespace.
const (
	ExtQuery       = "query"
	ExtSessionBind = "session-bind@openssh.com"
	ExtAdd         = "add@llm-agent"
	ExtGet         = "get@llm-agent"
	ExtList        = "list@llm-agent"
	ExtRemove      = "remove@llm-agent"
	ExtRemoveAll   = "remove-all@llm-agent"
	ExtStatus      = "status@llm-agent"
)

// Extensions lists the extensions an llm-agent answers, in the order the
// query extension reports them.
var Extensions = []string{ExtQuery, ExtSessionBind, ExtAdd, ExtGet, ExtList, ExtRemove, ExtRemoveAll, ExtStatus, ExtOwner, ExtGuard, ExtRelay}

// Credential kinds, as in opencode's auth.json "type" field.
const (
	KindAPI       = "api"
	KindOAuth     = "oauth"
	KindWellKnown = "wellknown"
)

// Field names, as in opencode's auth.json. FieldExtra holds a JSON object
// with the fields of an imported entry that llm-agent does not interpret.
const (
	FieldKey           = "key"
	FieldRefresh       = "refresh"
	FieldAccess        = "access"
	FieldExpires       = "expires"
	FieldAccountID     = "accountId"
	FieldEnterpriseURL = "enterpriseUrl"
	FieldToken         = "token"
	FieldExtra         = "extra"
)

type kindSpec struct {
	required []string
	optional []string
	secret   map[string]bool
}

var kinds = map[string]kindSpec{
	KindAPI: {
		required: []string{FieldKey},
		optional: []string{FieldExtra},
		secret:   map[string]bool{FieldKey: true, FieldExtra: true},
	},
	KindOAuth: {
		required: []string{FieldRefresh},
		optional: []string{FieldAccess, FieldExpires, FieldAccountID, FieldEnterpriseURL, FieldExtra},
		secret:   map[string]bool{FieldRefresh: true, FieldAccess: true, FieldExtra: true},
	},
	KindWellKnown: {
		required: []string{FieldKey, FieldToken},
		optional: []string{FieldExtra},
		secret:   map[string]bool{FieldToken: true, FieldExtra: true},
	},
}

// IsSecret reports whether field name of a credential of the given kind
// holds secret material, which the agent keeps sealed in an enclave.
func IsSecret(kind, name string) bool { return kinds[kind].secret[name] }

// Field is one named value of a credential.
type Field struct {
	Name  string
	Value []byte
}

// Credential is a provider's credential as it crosses the wire.
type Credential struct {
	Provider string
	Kind     string
	Fields   []Field
}

// Value returns the value of the named field, or nil.
func (c *Credential) Value(name string) []byte {
	for _, f := range c.Fields {
		if f.Name == name {
			return f.Value
		}
	}
	return nil
}

// Wipe zeroes every field value.
func (c *Credential) Wipe() {
	for _, f := range c.Fields {
		clear(f.Value)
	}
}

// Validate checks the kind, the field set and the field values. Its errors
// never include a value.
func (c *Credential) Validate() error {
	if err := ValidName(c.Provider); err != nil {
		return err
	}
	spec, ok := kinds[c.Kind]
	if !ok {
		return fmt.Errorf("unknown credential kind %q (want api, oauth or wellknown)", c.Kind)
	}
	seen := make(map[string]bool, len(c.Fields))
	for _, f := range c.Fields {
		if seen[f.Name] {
			return fmt.Errorf("field %q given twice", f.Name)
		}
		seen[f.Name] = true
		if !contains(spec.required, f.Name) && !contains(spec.optional, f.Name) {
			return fmt.Errorf("field %q does not belong to a %s credential", f.Name, c.Kind)
		}
		if f.Name == FieldExpires && !isDecimal(f.Value) {
			return fmt.Errorf("field %q is not a decimal number", f.Name)
		}
		if !spec.secret[f.Name] {
			if err := checkText(f.Value, MaxTextLen); err != nil {
				return fmt.Errorf("field %q: %w", f.Name, err)
			}
		}
	}
	for _, name := range spec.required {
		if v := c.Value(name); len(v) == 0 {
			return fmt.Errorf("a %s credential needs a non-empty %q", c.Kind, name)
		}
	}
	return nil
}

// isDecimal reports whether b is an optional minus sign and 1 to 18
// digits (fits int64). It does not copy b: a value sent in the wrong field
// may be a secret.
func isDecimal(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return false
	}
	for _, ch := range b {
		if ch < '0' || ch > '9' {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func (e *encoder) credential(c *Credential) {
	e.string(c.Provider)
	e.string(c.Kind)
	e.uint32(uint32(len(c.Fields)))
	for _, f := range c.Fields {
		e.string(f.Name)
		e.bytes(f.Value)
	}
}

func (d *decoder) credential() Credential {
	var c Credential
	c.Provider = d.text("provider", MaxNameLen)
	c.Kind = d.text("kind", MaxNameLen)
	n := d.uint32()
	if n > MaxFields {
		d.fail(fmt.Errorf("%d fields, at most %d allowed", n, MaxFields))
		return c
	}
	for i := uint32(0); i < n && d.err == nil; i++ {
		name := d.text("field name", MaxFieldNameLen)
		v := d.bytes()
		if len(v) > MaxValueLen {
			d.fail(fmt.Errorf("field %q is longer than %d bytes", name, MaxValueLen))
		}
		c.Fields = append(c.Fields, Field{Name: name, Value: v})
	}
	return c
}

// Constraint types inside an add request (draft-miller-ssh-agent 3.2.7).
const (
	constrainLifetime  = 1
	constrainConfirm   = 2
	constrainExtension = 255
)

// Constraint extension names.
const (
	ConstraintLocalOnly   = "local-only@llm-agent"
	ConstraintDestination = "restrict-destination@llm-agent"
)

// Hop is one step of a destination chain: a host named for display and the
// host keys (SSH wire blobs) any one of which identifies it.
type Hop struct {
	Host string
	Keys [][]byte
}

// Chain is a sequence of hops from the laptop outwards: a connection whose
// verified session-bind hops match it hop for hop may use the credential.
type Chain []Hop

// String renders a chain as ssh-add -h writes it: "bastion>gpu1".
func (c Chain) String() string {
	s := ""
	for i, h := range c {
		if i > 0 {
			s += ">"
		}
		s += h.Host
	}
	return s
}

// Constraints restrict the use of a credential.
type Constraints struct {
	Lifetime     uint32 // seconds; 0 means the agent's default
	Confirm      bool   // ask the owner before each use
	LocalOnly    bool   // never visible on a forwarded connection
	Destinations []Chain
	WriteBack    *WriteBack    // oauth: rotated tokens go back to this laptop file
	Keychain     *KeychainItem // oauth: rotated tokens go back to this Keychain item
	// Command, when set, is run on the laptop (sh -c) for the secret; then
	// Lifetime is how long its value is kept, not the credential.
	Command string
	// TokensPerDay, when not zero, is the credential's daily token
	// budget: relayed requests only, and no get hands the credential out.
	TokensPerDay uint64
}

// AddRequest is the payload of add@llm-agent.
type AddRequest struct {
	Credential
	Constraints
}

// Marshal returns the extension frame for the request.
func (r *AddRequest) Marshal() []byte {
	e := newExtension(ExtAdd)
	e.credential(&r.Credential)
	if r.Lifetime != 0 {
		e.byte1(constrainLifetime)
		e.uint32(r.Lifetime)
	}
	if r.Confirm {
		e.byte1(constrainConfirm)
	}
	if r.LocalOnly {
		e.byte1(constrainExtension)
		e.string(ConstraintLocalOnly)
	}
	if len(r.Destinations) > 0 {
		e.byte1(constrainExtension)
		e.string(ConstraintDestination)
		e.uint32(uint32(len(r.Destinations)))
		for _, c := range r.Destinations {
			e.uint32(uint32(len(c)))
			for _, h := range c {
				e.string(h.Host)
				e.uint32(uint32(len(h.Keys)))
				for _, k := range h.Keys {
					e.bytes(k)
				}
			}
		}
	}
	if r.WriteBack != nil {
		e.writeBack(r.WriteBack)
	}
	if r.Keychain != nil {
		e.keychain(r.Keychain)
	}
	if r.Command != "" {
		e.command(r.Command)
	}
	if r.TokensPerDay != 0 {
		e.tokensPerDay(r.TokensPerDay)
	}
	return e.frame()
}

// ParseAddRequest decodes the payload of add@llm-agent. Field values alias
// payload. It does not validate the credential; call Validate.
func ParseAddRequest(payload []byte) (*AddRequest, error) {
	d := &decoder{b: payload}
	r := &AddRequest{Credential: d.credential()}
	seen := map[byte]bool{}
	for !d.empty() && d.err == nil {
		t := d.byte1()
		if seen[t] && t != constrainExtension {
			d.fail(fmt.Errorf("constraint %d given twice", t))
			break
		}
		seen[t] = true
		switch t {
		case constrainLifetime:
			r.Lifetime = d.uint32()
			if d.err == nil && r.Lifetime == 0 {
				d.fail(errors.New("lifetime constraint of zero seconds"))
			}
		case constrainConfirm:
			r.Confirm = true
		case constrainExtension:
			name := d.text("constraint name", MaxNameLen)
			switch name {
			case ConstraintLocalOnly:
				r.LocalOnly = true
			case ConstraintDestination:
				if r.Destinations != nil {
					d.fail(errors.New("destination constraint given twice"))
					break
				}
				r.Destinations = d.chains()
			case ConstraintWriteBack:
				if r.WriteBack != nil {
					d.fail(errors.New("write-back constraint given twice"))
					break
				}
				r.WriteBack = d.writeBack()
			case ConstraintKeychain:
				if r.Keychain != nil {
					d.fail(errors.New("keychain write-back constraint given twice"))
					break
				}
				r.Keychain = d.keychain()
			case ConstraintCommand:
				if r.Command != "" {
					d.fail(errors.New("command constraint given twice"))
					break
				}
				if r.Command = d.text("command", MaxTextLen); d.err == nil && r.Command == "" {
					d.fail(errors.New("empty command"))
				}
			case ConstraintTokensPerDay:
				if r.TokensPerDay != 0 {
					d.fail(errors.New("daily token budget given twice"))
					break
				}
				r.TokensPerDay = d.tokensPerDay()
			default:
				if d.err == nil {
					d.fail(fmt.Errorf("unknown constraint %q", name))
				}
			}
		default:
			d.fail(fmt.Errorf("unknown constraint type %d", t))
		}
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("add request: %w", err)
	}
	return r, nil
}

func (d *decoder) chains() []Chain {
	n := d.uint32()
	if n == 0 || n > MaxChains {
		d.fail(fmt.Errorf("%d destination chains; want 1 to %d", n, MaxChains))
		return nil
	}
	chains := make([]Chain, 0, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		nh := d.uint32()
		if nh == 0 || nh > MaxHops {
			d.fail(fmt.Errorf("%d hops in a destination chain; want 1 to %d", nh, MaxHops))
			return nil
		}
		var c Chain
		for j := uint32(0); j < nh && d.err == nil; j++ {
			h := Hop{Host: d.text("host", MaxTextLen)}
			nk := d.uint32()
			if nk == 0 || nk > MaxHostKeys {
				d.fail(fmt.Errorf("%d host keys for %q; want 1 to %d", nk, h.Host, MaxHostKeys))
				return nil
			}
			for k := uint32(0); k < nk && d.err == nil; k++ {
				h.Keys = append(h.Keys, d.bytes())
			}
			c = append(c, h)
		}
		chains = append(chains, c)
	}
	return chains
}

// Requester is what a client reports about the process asking for a
// credential. The agent cannot verify it when it comes over a forwarded
// connection, and says so wherever it shows it.
type Requester struct {
	PID      uint32 `json:"pid"`
	UID      uint32 `json:"uid"`
	Exe      string `json:"exe,omitempty"`
	Argv0    string `json:"argv0,omitempty"`
	Cwd      string `json:"cwd,omitempty"`
	Hostname string `json:"hostname,omitempty"`
}

// GetRequest is the payload of get@llm-agent.
type GetRequest struct {
	Provider  string
	Requester *Requester // optional
}

// Marshal returns the extension frame for the request.
func (r *GetRequest) Marshal() []byte {
	e := newExtension(ExtGet)
	e.string(r.Provider)
	if q := r.Requester; q != nil {
		e.requester(q)
	}
	return e.frame()
}

// ParseGetRequest decodes the payload of get@llm-agent.
func ParseGetRequest(payload []byte) (*GetRequest, error) {
	d := &decoder{b: payload}
	r := &GetRequest{Provider: d.text("provider", MaxNameLen)}
	if !d.empty() {
		r.Requester = d.requester()
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("get request: %w", err)
	}
	return r, nil
}

// AppendGetReply appends the reply frame for a get (SSH_AGENT_SUCCESS and
// the credential) to dst, which should have room for 4+GetReplySize(c)
// bytes so that the plaintext lands in the caller's (locked) buffer only.
func AppendGetReply(dst []byte, c *Credential) []byte {
	e := &encoder{b: append(dst, 0, 0, 0, 0)}
	e.byte1(MsgSuccess)
	e.credential(c)
	return e.frame()
}

// GetReplySize is the exact size of the body of a get reply for c, so that
// the agent can allocate (and later wipe) one buffer.
func GetReplySize(c *Credential) int {
	n := 1 + 4 + len(c.Provider) + 4 + len(c.Kind) + 4
	for _, f := range c.Fields {
		n += 4 + len(f.Name) + 4 + len(f.Value)
	}
	return n
}

// ParseGetReply decodes the body of a successful get reply (after the
// SSH_AGENT_SUCCESS byte). Values alias body.
func ParseGetReply(body []byte) (*Credential, error) {
	d := &decoder{b: body}
	c := d.credential()
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("get reply: %w", err)
	}
	return &c, nil
}

// RemoveRequest is the payload of remove@llm-agent.
type RemoveRequest struct{ Provider string }

// Marshal returns the extension frame for the request.
func (r *RemoveRequest) Marshal() []byte {
	e := newExtension(ExtRemove)
	e.string(r.Provider)
	return e.frame()
}

// ParseRemoveRequest decodes the payload of remove@llm-agent.
func ParseRemoveRequest(payload []byte) (*RemoveRequest, error) {
	d := &decoder{b: payload}
	r := &RemoveRequest{Provider: d.text("provider", MaxNameLen)}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("remove request: %w", err)
	}
	return r, nil
}

// Entry is one credential as list@llm-agent describes it: metadata only.
type Entry struct {
	Provider      string
	Kind          string
	Added         int64 // unix seconds
	Expires       int64 // unix seconds when the agent drops it; 0: never
	Confirm       bool
	LocalOnly     bool
	Destinations  []string // chains as "host>host"
	AccessExpires int64    // oauth: epoch milliseconds of the access token; 0: unknown
	HasRefresh    bool
	NeedsLogin    bool // oauth: the provider refused the refresh token
	// A credential whose secret comes from a command (add --from-command):
	Command      string // the command line; "" for any other credential
	HasValue     bool   // the agent holds a value the command printed
	ValueExpires int64  // unix seconds when that value is forgotten; 0: never
	Attention    string // why the last run gave no value; "" when it did
	// A credential with a daily token budget (add --max-tokens-per-day):
	TokensPerDay uint64 // the budget; 0: none
	TokensToday  uint64 // what relayed requests used today
}

// MarshalListReply returns the reply frame for list@llm-agent.
func MarshalListReply(entries []Entry) []byte {
	e := &encoder{b: make([]byte, 4, 64+len(entries)*64)}
	e.byte1(MsgSuccess)
	e.uint32(uint32(len(entries)))
	for _, x := range entries {
		e.string(x.Provider)
		e.string(x.Kind)
		e.uint64(uint64(x.Added))
		e.uint64(uint64(x.Expires))
		e.bool1(x.Confirm)
		e.bool1(x.LocalOnly)
		e.uint32(uint32(len(x.Destinations)))
		for _, s := range x.Destinations {
			e.string(s)
		}
		e.uint64(uint64(x.AccessExpires))
		e.bool1(x.HasRefresh)
		e.bool1(x.NeedsLogin)
		e.string(x.Command)
		e.bool1(x.HasValue)
		e.uint64(uint64(x.ValueExpires))
		e.string(x.Attention)
		e.uint64(x.TokensPerDay)
		e.uint64(x.TokensToday)
	}
	return e.frame()
}

// ParseListReply decodes the body of a list reply (after SSH_AGENT_SUCCESS).
func ParseListReply(body []byte) ([]Entry, error) {
	d := &decoder{b: body}
	n := d.uint32()
	// Each entry takes at least 69 bytes; refuse counts the body cannot hold.
	if d.err == nil && uint64(n)*69 > uint64(len(d.b)) {
		return nil, fmt.Errorf("list reply: %d entries do not fit in %d bytes", n, len(d.b))
	}
	entries := make([]Entry, 0, n)
	for i := uint32(0); i < n && d.err == nil; i++ {
		var x Entry
		x.Provider = d.text("provider", MaxNameLen)
		x.Kind = d.text("kind", MaxNameLen)
		x.Added = int64(d.uint64())
		x.Expires = int64(d.uint64())
		x.Confirm = d.bool1()
		x.LocalOnly = d.bool1()
		nd := d.uint32()
		if nd > MaxChains {
			d.fail(fmt.Errorf("%d destinations, at most %d", nd, MaxChains))
			break
		}
		for j := uint32(0); j < nd && d.err == nil; j++ {
			x.Destinations = append(x.Destinations, d.text("destination", MaxTextLen))
		}
		x.AccessExpires = int64(d.uint64())
		x.HasRefresh = d.bool1()
		x.NeedsLogin = d.bool1()
		x.Command = d.text("command", MaxTextLen)
		x.HasValue = d.bool1()
		x.ValueExpires = int64(d.uint64())
		x.Attention = d.text("attention", MaxTextLen)
		x.TokensPerDay = d.uint64()
		x.TokensToday = d.uint64()
		entries = append(entries, x)
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("list reply: %w", err)
	}
	return entries, nil
}

// Status is the reply to status@llm-agent.
type Status struct {
	Locked    bool
	Count     uint32 // credentials visible on this connection
	Forwarded bool   // the agent sees this connection as forwarded
	Version   string
}

// MarshalStatusReply returns the reply frame for status@llm-agent.
func MarshalStatusReply(s Status) []byte {
	e := &encoder{b: make([]byte, 4, 32)}
	e.byte1(MsgSuccess)
	e.bool1(s.Locked)
	e.uint32(s.Count)
	e.bool1(s.Forwarded)
	e.string(s.Version)
	return e.frame()
}

// ParseStatusReply decodes the body of a status reply.
func ParseStatusReply(body []byte) (*Status, error) {
	d := &decoder{b: body}
	s := &Status{Locked: d.bool1(), Count: d.uint32(), Forwarded: d.bool1(), Version: d.text("version", MaxNameLen)}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("status reply: %w", err)
	}
	return s, nil
}

// MarshalCountReply returns a success frame carrying a count
// (remove-all@llm-agent).
func MarshalCountReply(n uint32) []byte {
	e := &encoder{b: make([]byte, 4, 9)}
	e.byte1(MsgSuccess)
	e.uint32(n)
	return e.frame()
}

// ParseCountReply decodes a count reply body.
func ParseCountReply(body []byte) (uint32, error) {
	d := &decoder{b: body}
	n := d.uint32()
	if err := d.finish(); err != nil {
		return 0, fmt.Errorf("count reply: %w", err)
	}
	return n, nil
}

// MarshalQueryReply returns the reply to the standard query extension:
// SSH_AGENT_SUCCESS followed by the extension names.
func MarshalQueryReply(names []string) []byte {
	e := &encoder{b: make([]byte, 4, 256)}
	e.byte1(MsgSuccess)
	for _, n := range names {
		e.string(n)
	}
	return e.frame()
}

// ParseQueryReply decodes the body of a query reply.
func ParseQueryReply(body []byte) ([]string, error) {
	d := &decoder{b: body}
	var names []string
	for !d.empty() && d.err == nil && len(names) < 256 {
		names = append(names, d.text("extension name", MaxTextLen))
	}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("query reply: %w", err)
	}
	return names, nil
}

// Failure codes carried after SSH_AGENT_EXTENSION_FAILURE, so that a client
// can tell the user what went wrong. Plain SSH agents send no code; the
// client then reports a generic failure.
const (
	CodeFailed       = 1 // anything else
	CodeNotFound     = 2 // no credential for that provider
	CodeLocked       = 3 // the agent is locked
	CodeRefused      = 4 // the owner (or a missing askpass) refused a confirm
	CodeNotPermitted = 5 // management operation on a forwarded connection
	CodeDestination  = 6 // destination constraint not satisfied
	CodeBadRequest   = 7 // malformed or invalid request
	CodeResource     = 8 // out of locked memory or another resource
	CodeUnreachable  = 9 // a relay (the guard) cannot reach the agent: the laptop stopped answering
)

// Failure is an error reply: SSH_AGENT_EXTENSION_FAILURE with a code and a
// one-line message that never holds a secret.
type Failure struct {
	Code    uint32
	Message string
}

func (f *Failure) Error() string { return f.Message }

// MarshalFailure returns an extension failure frame.
func MarshalFailure(code uint32, msg string) []byte {
	if len(msg) > MaxTextLen {
		cut := MaxTextLen
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut]
	}
	e := &encoder{b: make([]byte, 4, 16+len(msg))}
	e.byte1(MsgExtensionFailure)
	e.uint32(code)
	e.string(msg)
	return e.frame()
}

// ParseFailure decodes the body of an extension failure (after the message
// number). An empty body, as plain SSH agents send, gives CodeFailed.
func ParseFailure(body []byte) *Failure {
	if len(body) == 0 {
		return &Failure{Code: CodeFailed, Message: "the agent refused the request"}
	}
	d := &decoder{b: body}
	f := &Failure{Code: d.uint32(), Message: d.text("message", MaxTextLen)}
	if d.finish() != nil || f.Message == "" {
		return &Failure{Code: CodeFailed, Message: "the agent refused the request"}
	}
	return f
}

// Simple frames.
var (
	successFrame = []byte{0, 0, 0, 1, MsgSuccess}
	failureFrame = []byte{0, 0, 0, 1, MsgFailure}
)

// SuccessFrame returns a bare SSH_AGENT_SUCCESS frame.
func SuccessFrame() []byte { return append([]byte(nil), successFrame...) }

// FailureFrame returns a bare SSH_AGENT_FAILURE frame.
func FailureFrame() []byte { return append([]byte(nil), failureFrame...) }

// SimpleExtension returns the frame of an extension request with no payload.
func SimpleExtension(name string) []byte { return newExtension(name).frame() }

// ParseExtension splits an SSH_AGENTC_EXTENSION body (message number
// included) into its name and payload; the payload aliases body.
func ParseExtension(body []byte) (string, []byte, error) {
	d := &decoder{b: body}
	if d.byte1() != MsgExtension {
		return "", nil, errors.New("not an extension message")
	}
	name := d.text("extension name", MaxTextLen)
	if d.err != nil {
		return "", nil, fmt.Errorf("extension request: %w", d.err)
	}
	return name, d.b, nil
}

func newExtension(name string) *encoder {
	e := &encoder{b: make([]byte, 4, 128)}
	e.byte1(MsgExtension)
	e.string(name)
	return e
}

// frame fills in the length header reserved at the start of e.b.
func (e *encoder) frame() []byte {
	binary.BigEndian.PutUint32(e.b, uint32(len(e.b)-4))
	return e.b
}

// SessionBind is the payload of OpenSSH's session-bind@openssh.com: the
// server host key, the session identifier, the server's signature over it,
// and whether the connection carries a forwarded agent.
type SessionBind struct {
	HostKey    []byte
	SessionID  []byte
	Signature  []byte
	Forwarding bool
}

// ParseSessionBind decodes a session-bind@openssh.com payload.
func ParseSessionBind(payload []byte) (*SessionBind, error) {
	d := &decoder{b: payload}
	b := &SessionBind{HostKey: d.bytes(), SessionID: d.bytes(), Signature: d.bytes(), Forwarding: d.bool1()}
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("session-bind: %w", err)
	}
	return b, nil
}

// Marshal returns the extension frame for the bind (used by tests).
func (b *SessionBind) Marshal() []byte {
	e := newExtension(ExtSessionBind)
	e.bytes(b.HostKey)
	e.bytes(b.SessionID)
	e.bytes(b.Signature)
	e.bool1(b.Forwarding)
	return e.frame()
}

// ParseLock decodes the passphrase of SSH_AGENTC_LOCK or _UNLOCK (body
// after the message number); it aliases body.
func ParseLock(body []byte) ([]byte, error) {
	d := &decoder{b: body}
	p := d.bytes()
	if err := d.finish(); err != nil {
		return nil, fmt.Errorf("lock request: %w", err)
	}
	return p, nil
}

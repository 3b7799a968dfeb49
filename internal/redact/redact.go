// Package redact masks the passwords that connection strings carry, so that
// no error, log line or printed configuration shows one. It is the one place
// that knows the forms a password takes in the strings AuraOS is given:
// the user:password@ part of a URL, a password=… query parameter, and a
// password=… pair of a PostgreSQL key=value connection string, quoted or
// not.
package redact

import "regexp"

// Mask replaces every password Text finds.
const Mask = "xxxxx"

var (
	// userinfo is scheme://user:password@. The password runs to the last
	// "@" before the host (an unescaped "@" may be part of it) and stops at
	// white space and double quotes, which end a URL quoted in an error
	// message.
	// tokenUserinfo is the userinfo of a NATS URL without a colon: there
	// the whole userinfo is a token (nats://s3cret@host), a secret itself.
	// Also after a comma, in a list of NATS URLs.
	tokenUserinfo = regexp.MustCompile(`(?i)((?:nats|tls)://)[^:/?#@\s",]+@`)
	userinfo      = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.\-]*://[^:/?#@\s"]*):[^/?#\s"]*@`)
	// passwordPair is password=value (and sslpassword=…) in a URL query or
	// a key=value string, in any case, with optional spaces around "=" as
	// libpq allows. A value is either single-quoted with backslash escapes
	// or runs to white space, "&", "#" or a double quote; a colon just
	// before one of those is left out, as it ends the string in an error
	// message ("connect to …?password=x: refused").
	passwordPair = regexp.MustCompile(`(?i)(\b[a-z_]*password\s*=\s*)('(?:[^'\\]|\\.)*'?|(?:[^\s&#":]|:[^\s&#"])*)`)
)

// Text returns s with every password it recognises replaced by Mask. It
// works on any text, not only on a connection string alone, so that it can
// also clean an error message that quotes one.
func Text(s string) string {
	s = userinfo.ReplaceAllString(s, "$1:"+Mask+"@")
	s = tokenUserinfo.ReplaceAllString(s, "${1}"+Mask+"@")
	return passwordPair.ReplaceAllString(s, "${1}"+Mask)
}

// Error returns err with its message passed through Text, keeping err for
// errors.Is and errors.As. It returns nil for a nil err. Wrap an error with
// it where a library's message may quote the connection string it was given.
func Error(err error) error {
	if err == nil {
		return nil
	}
	return &masked{err: err}
}

type masked struct{ err error }

func (m *masked) Error() string { return Text(m.err.Error()) }
func (m *masked) Unwrap() error { return m.err }

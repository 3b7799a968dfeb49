package redact_test

import (
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/auraos/realtime/internal/redact"
)

func TestTextMasksEveryForm(t *testing.T) {
	t.Parallel()
	cases := []struct{ name, in, want string }{
		{"userinfo", "postgres://u:hunter3@db:5432/x?sslmode=disable", "postgres://u:xxxxx@db:5432/x?sslmode=disable"},
		{"userinfo with an @ in the password", "postgres://u:p@ss@db/x", "postgres://u:xxxxx@db/x"},
		{"userinfo of a host list", "esdb://admin:changeit@node1:2113,node2:2113?tlsCAFile=/ca", "esdb://admin:xxxxx@node1:2113,node2:2113?tlsCAFile=/ca"},
		{"a NATS token", "nats://s3cret@nats:4222", "nats://xxxxx@nats:4222"},
		{"NATS URLs with a token and a password", "nats://u:pw@a:4222,tls://tok@b:4222", "nats://u:xxxxx@a:4222,tls://xxxxx@b:4222"},
		{"a NATS URL without credentials", "nats://127.0.0.1:4222", "nats://127.0.0.1:4222"},
		{"user without password", "postgres://u@db/x", "postgres://u@db/x"},
		{"no credentials", "esdb://localhost:2113?tls=false", "esdb://localhost:2113?tls=false"},
		{"query parameter", "postgres://db/x?password=hunter3", "postgres://db/x?password=xxxxx"},
		{"query parameter among others", "postgres://db/x?sslmode=disable&password=hunter3&search_path=a", "postgres://db/x?sslmode=disable&password=xxxxx&search_path=a"},
		{"query parameter in capitals", "postgres://db/x?PASSWORD=hunter3", "postgres://db/x?PASSWORD=xxxxx"},
		{"query parameter in mixed case", "postgres://db/x?Password=hunter3#frag", "postgres://db/x?Password=xxxxx#frag"},
		{"sslpassword", "postgres://db/x?sslpassword=keypass", "postgres://db/x?sslpassword=xxxxx"},
		{"both at once", "postgres://u:hunter3@127.0.0.1:1/x?password=hunter4", "postgres://u:xxxxx@127.0.0.1:1/x?password=xxxxx"},
		{"key=value", "host=db password=kvsecret dbname=x", "host=db password=xxxxx dbname=x"},
		{"key=value last", "host=db password=kvsecret", "host=db password=xxxxx"},
		{"key=value quoted", "host=db password='kv secret' dbname=x", "host=db password=xxxxx dbname=x"},
		{"key=value quoted with escapes", `host=db password='it\'s \\ here' dbname=x`, "host=db password=xxxxx dbname=x"},
		{"key=value unterminated quote", "host=db password='kv secret", "host=db password=xxxxx"},
		{"key=value spaces around =", "host=db password = kvsecret dbname=x", "host=db password = xxxxx dbname=x"},
		{"key=value space after =, as libpq reads it", "host=db password= kvsecret", "host=db password= xxxxx"},
		{"key=value in capitals", "host=db PASSWORD=kvsecret", "host=db PASSWORD=xxxxx"},
		{"quoted in an error message", `parse "postgres://u:hunter3@127.0.0.1:bad/x?password=hunter4": invalid port ":bad" after host`,
			`parse "postgres://u:xxxxx@127.0.0.1:bad/x?password=xxxxx": invalid port ":bad" after host`},
		{"followed by a colon in a message", "connect to postgres://db/x?password=a:b: refused", "connect to postgres://db/x?password=xxxxx: refused"},
		{"other words stay", "the password was refused for user u", "the password was refused for user u"},
	}
	for _, c := range cases {
		if got := redact.Text(c.in); got != c.want {
			t.Errorf("%s: Text(%q) = %q, want %q", c.name, c.in, got, c.want)
		}
	}
}

func TestErrorMasksAndUnwraps(t *testing.T) {
	t.Parallel()
	if redact.Error(nil) != nil {
		t.Fatal("Error(nil) is not nil")
	}
	cause := errors.Join(fs.ErrNotExist, errors.New("connect to postgres://u:hunter3@db/x?password=hunter4"))
	err := redact.Error(cause)
	if strings.Contains(err.Error(), "hunter") || !strings.Contains(err.Error(), "postgres://u:xxxxx@db/x?password=xxxxx") {
		t.Fatalf("masked error: %q", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("the masked error lost its cause")
	}
}

package committed

import (
	"fmt"
	"strings"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// RequestsDir holds manual renewal requests: `certsync renew` commits one
// file per Certificate, the agent renews it and removes the file in the
// commit that carries the new certificate, so both ends are audited.
const RequestsDir = "requests/renew/"

// RenewRequest is one manual renewal request, as `cmctl renew` makes one.
type RenewRequest struct {
	Certificate string    `yaml:"certificate"` // "namespace/name"
	RequestedAt time.Time `yaml:"requestedAt"`
	RequestedBy string    `yaml:"requestedBy"`
	Path        string    `yaml:"-"`
}

// RenewRequestPath is where the request for a Certificate is kept.
func RenewRequestPath(namespace, name string) string {
	return RequestsDir + namespace + "/" + name + ".yaml"
}

// MarshalRenewRequest writes a request file.
func MarshalRenewRequest(r RenewRequest) ([]byte, error) {
	r.RequestedAt = r.RequestedAt.UTC().Truncate(time.Second)
	out, err := yaml.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("renewal request for %s: %w", r.Certificate, err)
	}
	return out, nil
}

// ReadRenewRequest reads a request file.
func ReadRenewRequest(p string, content []byte) (RenewRequest, error) {
	var r RenewRequest
	if err := yaml.Unmarshal(content, &r); err != nil {
		return r, errorf(p, "malformed renewal request: %v", err)
	}
	if !strings.Contains(r.Certificate, "/") || r.RequestedAt.IsZero() {
		return r, errorf(p, "renewal request needs certificate: namespace/name and requestedAt")
	}
	r.Path = p
	return r, nil
}

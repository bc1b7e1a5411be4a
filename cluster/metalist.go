package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilnet "k8s.io/apimachinery/pkg/util/net"
)

// listPageSize is how many Secrets a list asks for at once.
const listPageSize = 500

// metaListAccept asks for a list's metadata only, as protobuf: the first
// choice of the metadata client, without its JSON alternatives.
const metaListAccept = runtime.ContentTypeProtobuf + ";as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"

// listMetadata lists the owned Secrets of ns without their data, reading
// in full those changed since certsync last saw them match.
func (c *Client) listMetadata(ctx context.Context, ns string, out []Observed) ([]Observed, error) {
	err := c.eachListed(ctx, ns, listPageSize, "", func(m listedMeta) error {
		var err error
		out, err = c.observeListed(ctx, m, out)
		return err
	})
	return out, err
}

// eachListed calls fn with each owned Secret of ns, listing their metadata
// limit at a time from the page cont ("": the first).
//
// Decoding 10,000 Secrets' metadata with client-go's generated code made
// about 120 MB of garbage per list (each page read whole by doubling, the
// raw list copied again, every managedFields entry and annotation made a
// Go value), for a namespace, a name, a resourceVersion and a few
// annotations each. So each page is read into one buffer this call
// reuses and decoded in place (see metaDecoder). The request goes through
// the typed clientset (its rate limit, retries after 429, error
// decoding); an answer that is not protobuf after all (a proxy may
// rewrite it) is listed again, from that page on, by the metadata client,
// as is one lost to a reset connection, which the metadata client
// retries: correctness never depends on the fast path.
func (c *Client) eachListed(ctx context.Context, ns string, limit int64, cont string, fn func(listedMeta) error) error {
	var (
		head  responseHead
		page  []byte // the reused buffer: the largest page read so far
		dec   metaDecoder
		items []listedMeta
	)
	headCtx := context.WithValue(ctx, responseHeadKey{}, &head)
	for {
		req := c.cs.CoreV1().RESTClient().Get().Namespace(ns).Resource("secrets").
			Param("labelSelector", c.selector()).Param("limit", strconv.FormatInt(limit, 10)).
			SetHeader("Accept", metaListAccept)
		if cont != "" {
			req = req.Param("continue", cont)
		}
		head = responseHead{}
		body, err := req.Stream(headCtx)
		if err != nil {
			if connectionLost(err) {
				return c.eachListedByMetadataClient(ctx, ns, limit, cont, fn)
			}
			return fmt.Errorf("list Secrets (metadata): %w", scrub(err))
		}
		if !head.protobuf() {
			body.Close()
			return c.eachListedByMetadataClient(ctx, ns, limit, cont, fn)
		}
		page, err = readPage(body, page, head.contentLength)
		body.Close()
		if err != nil {
			return fmt.Errorf("list Secrets (metadata): read the answer: %w", err)
		}
		items, cont, err = dec.decodePage(page, items[:0])
		if err != nil {
			return fmt.Errorf("list Secrets (metadata): %w", err)
		}
		for _, m := range items {
			if err := fn(m); err != nil {
				return err
			}
		}
		if cont == "" {
			return nil
		}
	}
}

// eachListedByMetadataClient is eachListed through the metadata client
// (client-go's decoding), from the page cont on.
func (c *Client) eachListedByMetadataClient(ctx context.Context, ns string, limit int64, cont string, fn func(listedMeta) error) error {
	opts := metav1.ListOptions{LabelSelector: c.selector(), Limit: limit, Continue: cont}
	for {
		list, err := c.meta.Resource(secretsResource).Namespace(ns).List(ctx, opts)
		if err != nil {
			return fmt.Errorf("list Secrets (metadata): %w", scrub(err))
		}
		for i := range list.Items {
			if err := fn(listedOf(&list.Items[i])); err != nil {
				return err
			}
		}
		if list.Continue == "" {
			return nil
		}
		opts.Continue = list.Continue
	}
}

// connectionLost reports the errors after which client-go's Do retries a
// GET and its Stream does not.
func connectionLost(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return false
	}
	return utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err)
}

// maxPresize bounds the buffer a Content-Length alone may make readPage
// allocate: past it, the buffer grows as the bytes arrive.
const maxPresize = 64 << 20

// readPage reads r to its end into buf's memory, grown when too small (to
// size, the Content-Length, when known) and returned for the next page.
func readPage(r io.Reader, buf []byte, size int64) ([]byte, error) {
	buf = buf[:0]
	// At least one byte more than the body: the read that finds the end
	// needs room. An eighth more: the next page, a little larger, then
	// fits too.
	if size >= 0 && size < maxPresize && int64(cap(buf)) < size+1 {
		buf = make([]byte, 0, size+size/8+1)
	}
	for {
		if len(buf) == cap(buf) {
			// Double rather than append's quarter steps: a body of unknown
			// length (a gzipped answer) then costs one copy of itself.
			grown := make([]byte, len(buf), max(2*cap(buf), 64<<10))
			copy(grown, buf)
			buf = grown
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
	}
}

// responseHead is what eachListed needs of an answer's headers, which
// client-go's Request.Stream does not hand back.
type responseHead struct {
	contentType   string
	contentLength int64 // -1: unknown
}

func (h responseHead) protobuf() bool {
	mediaType, _, _ := strings.Cut(h.contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mediaType), runtime.ContentTypeProtobuf)
}

// responseHeadKey is the context key of the *responseHead a request wants
// filled in.
type responseHeadKey struct{}

// recordResponseHead wraps the typed clientset's transport: it fills in
// the responseHead a request's context carries, and does nothing else.
func recordResponseHead(rt http.RoundTripper) http.RoundTripper { return headRecorder{rt} }

type headRecorder struct{ next http.RoundTripper }

func (h headRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := h.next.RoundTrip(r)
	if head, ok := r.Context().Value(responseHeadKey{}).(*responseHead); ok && resp != nil {
		*head = responseHead{contentType: resp.Header.Get("Content-Type"), contentLength: resp.ContentLength}
	}
	return resp, err
}

// WrappedRoundTripper lets client-go see through the wrapper.
func (h headRecorder) WrappedRoundTripper() http.RoundTripper { return h.next }

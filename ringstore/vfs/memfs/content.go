package memfs

import "slices"

// pageSize is the unit of copy-on-write sharing between a file's current
// content, its durable content and crash clones.
const pageSize = 4096

type page = [pageSize]byte

// content is a file's bytes as immutable shared pages: a page, once in a
// content, is never modified, so cloning copies only the page table. A nil
// page reads as zeros (preallocated space costs nothing).
type content struct {
	pages []*page
	size  int64
}

func (c content) clone() content { return content{pages: slices.Clone(c.pages), size: c.size} }

// prefix returns the first n bytes (n <= size) as a new content.
func (c content) prefix(n int64) content {
	p := content{pages: slices.Clone(c.pages[:(n+pageSize-1)/pageSize]), size: n}
	if rem := n % pageSize; rem != 0 && p.pages[len(p.pages)-1] != nil {
		// Bytes past the end must read as zeros if the file grows again.
		pg := new(page)
		copy(pg[:rem], p.pages[len(p.pages)-1][:rem])
		p.pages[len(p.pages)-1] = pg
	}
	return p
}

// grow extends the content with zeros to size bytes.
func (c *content) grow(size int64) {
	if size <= c.size {
		return
	}
	if n := int((size + pageSize - 1) / pageSize); n > len(c.pages) {
		c.pages = append(c.pages, make([]*page, n-len(c.pages))...)
	}
	c.size = size
}

// readAt copies bytes from off into p, up to the end; it returns the count.
func (c content) readAt(p []byte, off int64) int {
	if off >= c.size {
		return 0
	}
	p = p[:min(int64(len(p)), c.size-off)]
	for done := 0; done < len(p); {
		at := off + int64(done)
		pg, in := c.pages[at/pageSize], int(at%pageSize)
		n := min(len(p)-done, pageSize-in)
		if pg == nil {
			clear(p[done : done+n])
		} else {
			copy(p[done:done+n], pg[in:in+n])
		}
		done += n
	}
	return len(p)
}

// bytes returns a copy of [off, off+n) clipped to the end.
func (c content) bytes(off, n int64) []byte {
	if off >= c.size {
		return nil
	}
	b := make([]byte, min(n, c.size-off))
	c.readAt(b, off)
	return b
}

// writeAt stores p at off, growing the content, copying each touched page.
func (c *content) writeAt(p []byte, off int64) {
	c.grow(off + int64(len(p)))
	for done := 0; done < len(p); {
		at := off + int64(done)
		idx, in := at/pageSize, int(at%pageSize)
		n := min(len(p)-done, pageSize-in)
		pg := new(page)
		if old := c.pages[idx]; old != nil && n < pageSize {
			*pg = *old
		}
		copy(pg[in:in+n], p[done:done+n])
		c.pages[idx] = pg
		done += n
	}
}

// zero writes zeros over [off, off+n), clipped to the end.
func (c *content) zero(off, n int64) {
	if off >= c.size {
		return
	}
	c.writeAt(make([]byte, min(n, c.size-off)), off)
}

package deploy

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// The bounds of one document's YAML tree, checked before it is walked or
// decoded, so that the work a unit file costs is linear in its size (at
// most MaxFileSize bytes on the git side) whatever its aliases do.
const (
	// MaxAliasValues is how many values the aliases of one document may
	// add when expanded. A unit file has tens of values; YAML anchors in
	// one are for repeating an app or an env list, a few hundred values.
	MaxAliasValues = 10000
	// MaxNesting is how deep a document may nest mappings and lists. The
	// deepest field of a unit (apps[].args[], health.http.port) is at 3.
	MaxNesting = maxDepth
)

// bound refuses a document whose aliases expand past MaxAliasValues
// values, or that nests deeper than MaxNesting, or whose alias refers to
// the value that holds it. It walks the tree as written, once; an alias
// costs the (memoized) size of what it expands to.
func bound(file string, root *yaml.Node) error {
	b := &bounder{size: map[*yaml.Node]int{}}
	if f := b.walk(root, "", 0); f != nil {
		f.File = file
		return f
	}
	return nil
}

type bounder struct {
	size   map[*yaml.Node]int // expanded size of a node; -1 while it is measured
	budget int                // values added by aliases so far
}

func (b *bounder) walk(n *yaml.Node, path string, depth int) *FieldError {
	if depth > MaxNesting {
		return &FieldError{Line: n.Line, Field: path, Msg: fmt.Sprintf("nested more than %d levels deep", MaxNesting)}
	}
	switch n.Kind {
	case yaml.AliasNode:
		size, err := b.measure(n.Alias, 0)
		if err != nil {
			err.Line, err.Field = n.Line, path
			return err
		}
		if b.budget += size; b.budget > MaxAliasValues {
			return &FieldError{Line: n.Line, Field: path, Msg: fmt.Sprintf("aliases expand to more than %d values; write the values out, or use fewer aliases", MaxAliasValues)}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if f := b.walk(n.Content[i], path, depth+1); f != nil {
				return f
			}
			if f := b.walk(n.Content[i+1], joinPath(path, n.Content[i].Value), depth+1); f != nil {
				return f
			}
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for i, c := range n.Content {
			if f := b.walk(c, fmt.Sprintf("%s[%d]", path, i), depth+1); f != nil {
				return f
			}
		}
	}
	return nil
}

// measure is the number of values n expands to, saturated just past
// MaxAliasValues; depth counts the aliases followed to get here.
func (b *bounder) measure(n *yaml.Node, depth int) (int, *FieldError) {
	if s, ok := b.size[n]; ok {
		if s < 0 {
			return 0, &FieldError{Msg: "an alias refers to the value that holds it"}
		}
		return s, nil
	}
	if depth > MaxNesting {
		return 0, &FieldError{Msg: fmt.Sprintf("aliases nest more than %d levels deep", MaxNesting)}
	}
	b.size[n] = -1
	size := 1
	if n.Kind == yaml.AliasNode {
		size = 0
	}
	for _, c := range n.Content {
		s, err := b.measure(c, depth+1)
		if err != nil {
			return 0, err
		}
		size = min(size+s, MaxAliasValues+1)
	}
	if n.Kind == yaml.AliasNode {
		s, err := b.measure(n.Alias, depth+1)
		if err != nil {
			return 0, err
		}
		size = s
	}
	b.size[n] = size
	return size, nil
}

package v1alpha1

import "fmt"

// crossCheck finds what one input defines twice: the same kind and name,
// one hostname in two domains, one database name on one engine.
func crossCheck(source string, objs []Object, docOf []int, roots []*node) DecodeErrors {
	var errs DecodeErrors
	seen := map[string]int{} // what -> index into objs
	claim := func(i int, what, path, msg string) {
		j, dup := seen[what]
		if !dup {
			seen[what] = i
			return
		}
		at := roots[i].lookup(path)
		errs = append(errs, &DecodeError{Source: source, Document: docOf[i], Line: at.line, Column: at.col,
			Path: path, Msg: fmt.Sprintf(msg, docOf[j])})
	}
	for i, o := range objs {
		name := o.GetMeta().Name
		if name == "" {
			continue
		}
		claim(i, "object\x00"+string(o.GetKind())+"\x00"+name, "metadata.name",
			fmt.Sprintf("Duplicate value %s: %s %s is also defined in document %%d", formatValue(name), o.GetKind(), formatValue(name)))
		switch o := o.(type) {
		case *Domain:
			for _, h := range domainHosts(o) {
				claim(i, "host\x00"+h.name, h.path, fmt.Sprintf("Duplicate value %s: hostname also served by the domain in document %%d", formatValue(h.name)))
			}
		case *Database:
			if db := o.Spec.DatabaseName; db != "" {
				claim(i, "db\x00"+string(o.Spec.Engine)+"\x00"+db, "spec.databaseName",
					fmt.Sprintf("Duplicate value %s: database name also used by the database in document %%d", formatValue(db)))
			}
		}
	}
	return errs
}

type hostField struct{ name, path string }

// domainHosts lists the distinct hostnames of a domain with the field that names each.
func domainHosts(d *Domain) []hostField {
	var out []hostField
	seen := map[string]bool{}
	add := func(h string, p Path) {
		if h != "" && !seen[h] {
			seen[h] = true
			out = append(out, hostField{h, p.String()})
		}
	}
	add(d.Spec.ServerName, NewPath("spec", "serverName"))
	for i, a := range d.Spec.Aliases {
		add(a, NewPath("spec", "aliases").Index(i))
	}
	return out
}

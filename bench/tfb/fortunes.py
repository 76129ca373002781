"""The Fortune table of the TechEmpower specification, and the rendered page.

The twelve rows are the specification's (its Fortunes test page): row 11 is
markup that must come out escaped, row 12 is Japanese that must come out as
the same UTF-8. A server adds one row at request time, id 0, then sorts all
thirteen by message and renders them as the page below.
"""

FORTUNES = [
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. \u2014 Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. \u2014 Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "\u30d5\u30ec\u30fc\u30e0\u30ef\u30fc\u30af\u306e\u30d9\u30f3\u30c1\u30de\u30fc\u30af"),
]

ADDED = (0, "Additional fortune added at request time.")


def expected_rows():
    """The thirteen (id, message) rows in the page's order: sorted by message,
    compared as code points (the order of the UTF-8 bytes, and of C's strcmp)."""
    return sorted(FORTUNES + [ADDED], key=lambda r: r[1])


def escape(s):
    """The escaping the page needs: & < > " ' (what a template engine does)."""
    return (s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def page():
    """The page a server should send (one canonical spelling; the verifier
    accepts any HTML that parses to the same rows)."""
    rows = "".join("<tr><td>%d</td><td>%s</td></tr>" % (i, escape(m)) for i, m in expected_rows())
    return ("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
            "<tr><th>id</th><th>message</th></tr>%s</table></body></html>" % rows)

import Foundation

/// `diff`'s text for people: the two files and how their tensors were paired, a one-line
/// count, then only what differs (tensors only in one file, the changed pairs with max |Δ|,
/// max relative Δ, the worst element and how many elements exceed `--atol`, layers and
/// signatures), and the verdict. Every line fits `DiffText.width` columns.
public enum DiffText {
    /// The width every line of `diff` fits in.
    public static let width = 100

    public static func render(_ r: DiffReport, style: Styler = Styler(enabled: false)) -> String {
        var lines: [String] = []
        lines += TextLayout.field("A", "\(r.a.path) (\(r.a.format), \(r.a.tensors) tensors)", labelWidth: 11)
        lines += TextLayout.field("B", "\(r.b.path) (\(r.b.format), \(r.b.tensors) tensors)", labelWidth: 11)
        lines += TextLayout.field("matching", "\(r.matching.method.rawValue)" + (r.matching.note.map { ": \($0)" } ?? ""), labelWidth: 11)
        lines += TextLayout.field("tolerance", r.atol == 0 ? "none: values must be equal (--atol 0)" : "|a − b| ≤ \(number(r.atol)) (--atol)", labelWidth: 11)
        lines += TextLayout.field("tensors", countLine(r.summary), labelWidth: 11)
        unmatched("Only in A", r.onlyInA, style: style, into: &lines)
        unmatched("Only in B", r.onlyInB, style: style, into: &lines)
        changedTable(r, style: style, into: &lines)
        layerLines(r.layers, style: style, into: &lines)
        signatureLines(r.signatures, style: style, into: &lines)
        lines.append("")
        lines.append(verdict(r, style: style))
        return lines.joined(separator: "\n")
    }

    /// The last line. Files whose only gap is tensors that could not be read are not called
    /// different, but they are not vouched for either (exit 1).
    static func verdict(_ r: DiffReport, style: Styler) -> String {
        if r.identical { return style.green("identical" + (r.atol > 0 ? " within --atol \(number(r.atol))" : "")) + " (exit 0)" }
        let s = r.summary
        let onlyUnread = s.onlyInA == 0 && s.onlyInB == 0 && s.identical + s.notCompared == s.matched
            && !r.tensors.contains { $0.dtypeChanged || $0.shapeChanged } && (r.layers?.isEmpty ?? true) && (r.signatures?.isEmpty ?? true)
        if onlyUnread {
            return style.red("not shown identical: \(s.notCompared) tensor\(s.notCompared == 1 ? "" : "s") could not be compared") + " (exit 1)"
        }
        return style.red("the files differ") + " (exit 1)"
    }

    static func countLine(_ s: DiffReport.Summary) -> String {
        var parts = ["\(s.matched) matched", "\(s.identical) identical"]
        if s.valuesDiffer > 0 { parts.append("\(s.valuesDiffer) with values beyond tolerance") }
        if s.dtypeChanged > 0 { parts.append("\(s.dtypeChanged) with another dtype") }
        if s.shapeChanged > 0 { parts.append("\(s.shapeChanged) with another shape") }
        if s.notCompared > 0 { parts.append("\(s.notCompared) not compared") }
        parts.append("\(s.onlyInA) only in A")
        parts.append("\(s.onlyInB) only in B")
        return parts.joined(separator: ", ")
    }

    static func unmatched(_ title: String, _ tensors: [DiffReport.Unmatched], style: Styler, into lines: inout [String]) {
        guard !tensors.isEmpty else { return }
        var table = TextTable([.init("tensor"), .init("dtype"), .init("shape")], flexible: 0, indent: 2)
        for t in tensors { table.add([t.name, t.dtype, shape(t.shape)]) }
        section("\(title) (\(tensors.count))", table, style: style, into: &lines)
    }

    /// The pairs that are not identical: those whose dtype or shape changed or whose values
    /// were not compared, then those whose values differ beyond the tolerance.
    static func changedTable(_ r: DiffReport, style: Styler, into lines: inout [String]) {
        let structural = r.tensors.filter { $0.dtypeChanged || $0.shapeChanged || !$0.compared }
        if !structural.isEmpty {
            var table = TextTable([.init("tensor"), .init("A"), .init("B")], flexible: 0, indent: 2)
            for t in structural {
                table.add([t.name, "\(t.dtypeA) \(shape(t.shapeA))", "\(t.dtypeB) \(shape(t.shapeB))"], notes: notes(t))
            }
            section("Different dtype or shape, or not compared (\(structural.count))", table, style: style, into: &lines)
        }
        let values = r.tensors.filter { $0.compared && ($0.beyondAtol ?? 0) > 0 }
        guard !values.isEmpty else { return }
        var table = TextTable([.init("tensor"), .init("max |Δ|", .right), .init("max rel", .right), .init("worst"),
                               .init("A", .right), .init("B", .right), .init("> atol", .right)], flexible: 0, indent: 2)
        for t in values {
            var n = structural.contains(t) ? [] : notes(t)
            if let nan = t.nanMismatches, nan > 0 { n.append("\(nan) elements NaN on one side only") }
            table.add([t.name, number(t.maxAbsDiff), number(t.maxRelDiff), t.worstIndex.map(shape) ?? "–",
                       number(t.worstA), number(t.worstB), "\(t.beyondAtol ?? 0) of \(t.elements ?? 0)"], notes: n)
        }
        section("Values beyond tolerance (\(values.count))", table, style: style, into: &lines)
    }

    /// B's name when it is another (order matching) and the pair's note.
    static func notes(_ t: DiffReport.TensorDiff) -> [String] {
        (t.name == t.nameB ? [] : ["B: \(t.nameB)"]) + (t.note.map { [$0] } ?? [])
    }

    static func layerLines(_ d: DiffReport.LayerDiff?, style: Styler, into lines: inout [String]) {
        guard let d, !d.isEmpty else { return }
        lines.append("")
        lines.append(style.bold("Layers (\(d.onlyInA.count) only in A, \(d.onlyInB.count) only in B, \(d.changed.count) changed)"))
        for l in d.onlyInA { lines += TextLayout.wrap("- \(l.name) (\(l.className))", width: width, indent: 6, firstIndent: 2) }
        for l in d.onlyInB { lines += TextLayout.wrap("+ \(l.name) (\(l.className))", width: width, indent: 6, firstIndent: 2) }
        for c in d.changed {
            let inputs = c.inboundA == c.inboundB ? "" : "; inputs [\(c.inboundA.joined(separator: ", "))] → [\(c.inboundB.joined(separator: ", "))]"
            let classes = c.classA == c.classB ? c.classA : "\(c.classA) → \(c.classB)"
            lines += TextLayout.wrap("~ \(c.name) (\(classes))\(inputs)", width: width, indent: 6, firstIndent: 2)
        }
    }

    static func signatureLines(_ d: DiffReport.SignatureDiff?, style: Styler, into lines: inout [String]) {
        guard let d, !d.isEmpty else { return }
        lines.append("")
        lines.append(style.bold("Signatures (\(d.onlyInA.count) only in A, \(d.onlyInB.count) only in B, \(d.changed.count) changed)"))
        for s in d.onlyInA { lines += TextLayout.wrap("- \(s)", width: width, indent: 6, firstIndent: 2) }
        for s in d.onlyInB { lines += TextLayout.wrap("+ \(s)", width: width, indent: 6, firstIndent: 2) }
        for c in d.changed { lines += TextLayout.wrap("~ \(c.signature): \(c.a) in A, \(c.b) in B", width: width, indent: 6, firstIndent: 2) }
    }

    static func section(_ title: String, _ table: TextTable, style: Styler, into lines: inout [String]) {
        lines.append("")
        lines.append(style.bold(title))
        let rendered = table.render(width: width)
        lines.append(style.dim(rendered[0]))
        lines += rendered.dropFirst()
    }

    /// `[2, 3]`, as the worst index and shapes are printed.
    static func shape(_ s: [Int]) -> String { "[" + s.map(String.init).joined(separator: ", ") + "]" }

    /// Four significant digits; `nan`, `inf`; `–` for none.
    static func number(_ x: Double?) -> String {
        guard let x else { return "–" }
        if x.isNaN { return "nan" }
        if x.isInfinite { return x > 0 ? "inf" : "-inf" }
        return String(format: "%.4g", x)
    }
}

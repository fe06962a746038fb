import Converters
import Foundation
import Runtime

/// `inspect`'s text for people: the card in one sentence first, then the file, the card's
/// fields, provenance or catalog match, the serving signature, the layer table and the
/// tensors. Every line fits `TextLayout.width` columns.
public enum InspectText {
    public static func render(_ report: InspectReport, style: Styler = Styler(enabled: false)) -> String {
        var page = Page(style: style)
        if let m = report.model {
            page.lines += TextLayout.wrap("\(m.card.name): \(m.cardText)", indent: 2).map(style.bold)
            page.lines.append("")
        }
        page.field("file", report.file.path)
        page.field("size", "\(grouped(report.file.bytes)) bytes")
        page.field("sha256", report.file.sha256)
        page.field("format", "\(report.format.id): \(report.format.description)" + (report.format.convertedInMemory ? ", converted in memory" : ""))
        if let m = report.model {
            card(m, on: &page)
            provenance(m, on: &page)
            layers(m, on: &page)
        }
        if let problem = report.modelProblem {
            page.section("Not a head clipsafety converts")
            page.lines += TextLayout.wrap(problem, indent: 4, firstIndent: 2)
        }
        if let structure = report.structure {
            StructureText.render(structure, withModel: report.model != nil, on: &page)
        }
        if let tensors = report.tensors, !tensors.isEmpty {
            let arrays = report.model == nil && ["npy", "npz"].contains(report.format.id)
            page.section(arrays ? "Arrays (\(tensors.count))" : "Tensors (\(tensors.count))")
            tensorTable(tensors, on: &page)
            if tensors.contains(where: { $0.stats != nil }) {
                page.section("Statistics (finite values; NaN and Inf counted apart)")
                statisticsTable(tensors, on: &page)
            }
        }
        return page.lines.joined(separator: "\n")
    }

    /// Lines being built, with the section and field shapes every part uses.
    struct Page {
        let style: Styler
        var lines: [String] = []

        mutating func section(_ title: String) {
            lines.append("")
            lines.append(style.bold(title))
        }

        mutating func field(_ label: String, _ value: String) { lines += TextLayout.field(label, value) }

        /// A table, its header dimmed.
        mutating func table(_ table: TextTable) {
            let rendered = table.render()
            lines.append(style.dim(rendered[0]))
            lines += rendered.dropFirst()
        }
    }

    static func card(_ m: InspectReport.ModelSection, on page: inout Page) {
        page.section("Model card")
        let c = m.card
        page.field("name", c.name)
        page.field("task", c.task.rawValue)
        page.field("input", "\(c.embeddingDim)-d \(c.backbone) embeddings, \(c.inputPrecondition)")
        let range = c.outputRange.map { " in [\($0.map(CardText.number).joined(separator: ", "))]" } ?? ", unbounded"
        page.field("output", "\(c.outputColumns.joined(separator: ", ")): \(c.outputKind.rawValue)\(range)")
        if !c.labels.isEmpty {
            page.field("labels", c.labels.joined(separator: ", ") + (c.positiveLabel.map { " (positive: \($0))" } ?? ""))
        }
        if let t = c.threshold {
            page.field("threshold", "\(CardText.number(t))" + (c.thresholdSource.map { " (\($0))" } ?? ""))
        } else if let s = c.thresholdSource {
            page.field("decision", s)
        }
        if let d = c.description { page.field("about", d) }
        if let id = m.identification { page.field("catalog", identificationText(id)) }
    }

    static func provenance(_ m: InspectReport.ModelSection, on page: inout Page) {
        if let p = m.provenance {
            page.section("Provenance")
            page.field("original", p.originalFile)
            page.field("sha256", p.sha256)
            page.field("from", p.sourceFormat)
            page.field("converter", p.converter)
        }
        if let s = m.signature {
            page.section("Serving signature (\(s.key))")
            page.field("input", port(s.input))
            page.field("output", port(s.output))
        }
    }

    static func layers(_ m: InspectReport.ModelSection, on page: inout Page) {
        page.section("Layers")
        var table = TextTable([.init("#", .right), .init("name"), .init("op"), .init("in"), .init("out"),
                               .init("params", .right), .init("dtype")], flexible: 1)
        var previous: LayerRow.Source?
        for row in m.layers {
            var notes = row.notes
            // Name the source layer once, on the first op it became.
            if let s = row.source, row.index != nil, s != previous {
                notes.insert("from \(s.className)" + (s.name.isEmpty || s.name == row.name ? "" : " '\(s.name)'"), at: 0)
            }
            previous = row.source
            table.add([row.index.map(String.init) ?? "-", row.name,
                       row.op ?? "(\(row.source?.className ?? "none"))",
                       shape(row.inputShape), shape(row.outputShape),
                       row.op == nil ? "" : grouped(row.parameters), row.dtype ?? ""],
                      notes: notes)
        }
        page.table(table)
        page.field("total", "\(grouped(m.totalParameters)) parameters (elements of floating-point tensors)")
        if !m.sourceNotes.isEmpty {
            page.section("Source")
            for note in m.sourceNotes { page.lines += TextLayout.wrap(note, indent: 4, firstIndent: 2) }
        }
    }

    /// Rows shown before the table is cut (`--json` lists every tensor).
    static let maxTensorRows = 60

    static func tensorTable(_ tensors: [InspectReport.TensorEntry], on page: inout Page) {
        var table = TextTable([.init("name"), .init("dtype"), .init("shape"), .init("bytes", .right)], flexible: 0)
        for t in tensors.prefix(maxTensorRows) {
            table.add([t.name, t.dtype, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", t.bytes.map(grouped) ?? "?"])
        }
        page.table(table)
        if tensors.count > maxTensorRows {
            page.lines.append("  … \(tensors.count - maxTensorRows) more (inspect --json lists every tensor)")
        }
    }

    static func statisticsTable(_ tensors: [InspectReport.TensorEntry], on page: inout Page) {
        var stats = TextTable([.init("name"), .init("min", .right), .init("max", .right), .init("mean", .right),
                               .init("std", .right), .init("NaN", .right), .init("Inf", .right)], flexible: 0)
        for t in tensors {
            guard let s = t.stats else { continue }
            stats.add([t.name, num(s.min), num(s.max), num(s.mean), num(s.std), String(s.nan), String(s.inf)])
        }
        page.table(stats)
    }

    static func identificationText(_ id: InspectReport.Identification) -> String {
        switch id.matchedBy {
        case .sha256: return "\(id.name): the catalog file \(id.file) (SHA-256 matches)"
        case .gitBlob: return "\(id.name): the catalog file \(id.file) (git blob id matches)"
        case .provenance: return "\(id.name): converted from the catalog file \(id.file) (provenance SHA-256 matches)"
        }
    }

    static func port(_ p: ServingSignature.Port) -> String {
        let dims = p.shape.map { "(" + $0.map { $0.map(String.init) ?? "N" }.joined(separator: ", ") + ")" } ?? "(unknown rank)"
        return "\(p.name): \(p.dtype) \(dims), tensor \(p.tensor)"
    }

    static func shape(_ s: [Int?]?) -> String {
        guard let s else { return "?" }
        return "(" + s.map { $0.map(String.init) ?? "N" }.joined(separator: ", ") + ")"
    }

    /// `16416` → `16,416`.
    public static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, ch) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(ch)
        }
        return (n < 0 ? "-" : "") + out
    }

    static func num(_ v: Double?) -> String {
        guard let v else { return "-" }
        return String(format: "%.4g", v)
    }
}

import Converters
import Foundation
import Runtime

/// `inspect`'s text for people: the card in one sentence first, then the file, the card's
/// fields, provenance or catalog match, the serving signature, the layer table and the
/// tensors. Every line fits `TextLayout.width` columns.
public enum InspectText {
    public static func render(_ report: InspectReport, style: Styler = Styler(enabled: false)) -> String {
        var out: [String] = []
        func section(_ title: String) {
            out.append("")
            out.append(style.bold(title))
        }
        func field(_ label: String, _ value: String) { out += TextLayout.field(label, value) }

        if let m = report.model {
            out += TextLayout.wrap("\(m.card.name): \(m.cardText)", indent: 2).map(style.bold)
            out.append("")
        }
        field("file", report.file.path)
        field("size", "\(grouped(report.file.bytes)) bytes")
        field("sha256", report.file.sha256)
        field("format", "\(report.format.id): \(report.format.description)" + (report.format.convertedInMemory ? ", converted in memory" : ""))

        if let m = report.model {
            section("Model card")
            let c = m.card
            field("name", c.name)
            field("task", c.task.rawValue)
            field("input", "\(c.embeddingDim)-d \(c.backbone) embeddings, \(c.inputPrecondition)")
            let range = c.outputRange.map { " in [\($0.map(CardText.number).joined(separator: ", "))]" } ?? ", unbounded"
            field("output", "\(c.outputColumns.joined(separator: ", ")): \(c.outputKind.rawValue)\(range)")
            if !c.labels.isEmpty {
                field("labels", c.labels.joined(separator: ", ") + (c.positiveLabel.map { " (positive: \($0))" } ?? ""))
            }
            if let t = c.threshold {
                field("threshold", "\(CardText.number(t))" + (c.thresholdSource.map { " (\($0))" } ?? ""))
            } else if let s = c.thresholdSource {
                field("decision", s)
            }
            if let d = c.description { field("about", d) }
            if let id = m.identification { field("catalog", identificationText(id)) }
            if let p = m.provenance {
                section("Provenance")
                field("original", p.originalFile)
                field("sha256", p.sha256)
                field("from", p.sourceFormat)
                field("converter", p.converter)
            }
            if let s = m.signature {
                section("Serving signature (\(s.key))")
                field("input", port(s.input))
                field("output", port(s.output))
            }
            section("Layers")
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
            let rendered = table.render()
            out.append(style.dim(rendered[0]))
            out += rendered.dropFirst()
            field("total", "\(grouped(m.totalParameters)) parameters (elements of floating-point tensors)")
            if !m.sourceNotes.isEmpty {
                section("Source")
                for note in m.sourceNotes { out += TextLayout.wrap(note, indent: 4, firstIndent: 2) }
            }
        }
        if let tensors = report.tensors {
            section(report.model == nil && report.format.id != "safetensors" ? "Arrays (\(tensors.count))" : "Tensors (\(tensors.count))")
            var table = TextTable([.init("name"), .init("dtype"), .init("shape"), .init("bytes", .right)], flexible: 0)
            for t in tensors {
                table.add([t.name, t.dtype, "[" + t.shape.map(String.init).joined(separator: ", ") + "]", grouped(t.bytes)])
            }
            let rendered = table.render()
            out.append(style.dim(rendered[0]))
            out += rendered.dropFirst()
            if tensors.contains(where: { $0.stats != nil }) {
                section("Statistics (finite values; NaN and Inf counted apart)")
                var stats = TextTable([.init("name"), .init("min", .right), .init("max", .right), .init("mean", .right),
                                       .init("std", .right), .init("NaN", .right), .init("Inf", .right)], flexible: 0)
                for t in tensors {
                    guard let s = t.stats else { continue }
                    stats.add([t.name, num(s.min), num(s.max), num(s.mean), num(s.std), String(s.nan), String(s.inf)])
                }
                let r = stats.render()
                out.append(style.dim(r[0]))
                out += r.dropFirst()
            }
        }
        return out.joined(separator: "\n")
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

import Converters
import Foundation

/// The `structure` part of `inspect`'s text: stored layers, tensor groups and totals, plain
/// values, signatures, op histogram and HDF5 objects, each only when the file has them.
enum StructureText {
    static let maxRows = 60

    static func render(_ s: StructureReport, withModel: Bool, on page: inout InspectText.Page) {
        if !s.layers.isEmpty { storedLayers(s, on: &page) }
        if !withModel { groups(s, on: &page) }
        if !s.signatures.isEmpty {
            page.section("Signatures (\(s.signatures.count))")
            for sig in s.signatures {
                page.lines += TextLayout.wrap(sig.key + (sig.method.map { " (\($0))" } ?? ""), indent: 4, firstIndent: 2)
                for port in sig.inputs { page.lines += TextLayout.wrap("in  " + InspectText.port(port), indent: 8, firstIndent: 4) }
                for port in sig.outputs { page.lines += TextLayout.wrap("out " + InspectText.port(port), indent: 8, firstIndent: 4) }
            }
        }
        if !s.ops.isEmpty { ops(s.ops, on: &page) }
        if !s.metadata.isEmpty {
            page.section("Values (\(s.metadata.count))")
            var table = TextTable([.init("key"), .init("value")], flexible: 1)
            for e in s.metadata.prefix(maxRows) { table.add([e.key, e.value]) }
            page.table(table)
            if s.metadata.count > maxRows { page.lines.append("  … \(s.metadata.count - maxRows) more (inspect --json lists all)") }
        }
        if !s.objects.isEmpty { objects(s.objects, on: &page) }
        if !s.notes.isEmpty {
            page.section("Container")
            for note in s.notes { page.lines += TextLayout.wrap(note, indent: 4, firstIndent: 2) }
        }
        if let arch = s.suggestedArch, !withModel {
            page.section("Suggested --arch")
            // Spaces after the commas (the spec allows them) let the line wrap.
            page.lines += TextLayout.wrap(arch.replacingOccurrences(of: ",", with: ", "), indent: 2)
            page.lines += TextLayout.wrap("linear steps only: activations (relu, sigmoid) leave no trace in the weights; add them where the model has them", indent: 2)
        }
    }

    /// Op types shown in the text; `--json` lists all.
    static let maxOps = 16

    static func ops(_ ops: [StructureReport.OpCount], on page: inout InspectText.Page) {
        let nodes = ops.reduce(0) { $0 + $1.count }
        page.section("Graph ops (\(InspectText.grouped(nodes)) nodes, \(ops.count) op types)")
        let shown = ops.prefix(maxOps).map { "\($0.op)×\(InspectText.grouped($0.count))" }
        let more = ops.count > maxOps ? ["… \(ops.count - maxOps) more op types (inspect --json lists all)"] : []
        page.lines += TextLayout.wrap((shown + more).joined(separator: ", "), indent: 2)
    }

    static func storedLayers(_ s: StructureReport, on page: inout InspectText.Page) {
        page.section("Stored layers (\(s.layers.count)" + (s.modelClass.map { ", \($0) model)" } ?? ")"))
        var table = TextTable([.init("name"), .init("class"), .init("inbound"), .init("output"), .init("params", .right)], flexible: 2)
        for l in s.layers.prefix(maxRows) {
            table.add([l.name, l.className, l.inbound.joined(separator: ", "), InspectText.shape(l.outputShape).replacingOccurrences(of: "?", with: ""),
                       InspectText.grouped(l.parameters)])
        }
        page.table(table)
        if s.layers.count > maxRows { page.lines.append("  … \(s.layers.count - maxRows) more (inspect --json lists all)") }
        page.field("total", "\(InspectText.grouped(s.totalParameters)) parameters (every stored weight, as Keras' count_params)")
        if let problem = s.chainProblem { page.field("chain", problem) }
    }

    static func groups(_ s: StructureReport, on page: inout InspectText.Page) {
        guard s.totals.tensors > 0 else { return }
        if s.tensorGroups.count > 1 {
            page.section("Tensor groups (\(s.tensorGroups.count))")
            var table = TextTable([.init("prefix"), .init("tensors", .right), .init("elements", .right)], flexible: 0)
            for g in s.tensorGroups.prefix(maxRows) {
                table.add([g.prefix.isEmpty ? "(root)" : g.prefix, String(g.tensors), InspectText.grouped(g.elements)])
            }
            page.table(table)
            if s.tensorGroups.count > maxRows { page.lines.append("  … \(s.tensorGroups.count - maxRows) more") }
        }
        let byType = s.totals.byDType.map { "\($0.dtype) \($0.tensors) (\(InspectText.grouped($0.elements)))" }.joined(separator: ", ")
        page.field("totals", "\(s.totals.tensors) tensors, \(InspectText.grouped(s.totals.elements)) elements"
                   + (s.totals.bytes.map { ", \(InspectText.grouped($0)) bytes" } ?? "") + "; " + byType)
    }

    static func objects(_ objects: [StructureReport.Object], on page: inout InspectText.Page) {
        page.section("HDF5 objects (\(objects.count))")
        var table = TextTable([.init("path"), .init("kind"), .init("dtype"), .init("shape"), .init("storage")], flexible: 0)
        for o in objects.prefix(maxRows) {
            let storage = (o.chunks.map { ["chunks [" + $0.map(String.init).joined(separator: ", ") + "]"] } ?? []) + o.filters
            let attributes = o.attributes.map { a in "@\(a.name): " + (a.value ?? "\(a.dtype) \(a.shape)") }
            table.add([o.path, o.kind, o.dtype ?? "", o.shape.map { "[" + $0.map(String.init).joined(separator: ", ") + "]" } ?? "",
                       storage.joined(separator: ", ")], notes: attributes + o.notes)
        }
        page.table(table)
        if objects.count > maxRows { page.lines.append("  … \(objects.count - maxRows) more (inspect --json lists all)") }
    }
}

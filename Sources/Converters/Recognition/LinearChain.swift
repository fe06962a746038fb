import Foundation
import Runtime

/// Reads a chain of linear layers off a state dict's tensors: what `inspect` suggests as
/// `--arch` and what the refusal of an unrecognised head offers. Only `linear` steps are ever
/// suggested: activations leave no trace in the weights, so the user must add them.
public enum LinearChain {
    /// The spec of linear steps the floating-point tensors form, in file order, when every one of
    /// them is a `PREFIX.weight` [out, in] or its `PREFIX.bias` [out] and the widths chain
    /// (each layer's `out` is the next one's `in`); nil otherwise. In a training checkpoint
    /// (plain values beside the tensors) a single top-level entry holding such a chain
    /// (`state_dict`, `model`) is found too.
    public static func suggestedSpec(_ d: FileDescription) -> ArchSpec? {
        let floats = d.tensors.filter(\.isFloatingPoint)
        if let spec = chain(floats) { return spec }
        guard !d.metadata.isEmpty else { return nil }
        let tops = orderedUnique(floats.map { topLevel($0.name) })
        for top in tops {
            if let spec = chain(floats.filter { topLevel($0.name) == top }) { return spec }
        }
        return nil
    }

    /// The spec over `tensors` or nil: one `linear` step per weight, in order.
    static func chain(_ tensors: [DescribedTensor]) -> ArchSpec? {
        guard !tensors.isEmpty else { return nil }
        let byName = Dictionary(tensors.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var prefixes: [String] = []
        var covered = Set<String>()
        for t in tensors where t.name == "weight" || t.name.hasSuffix(".weight") {
            let prefix = t.name == "weight" ? "" : String(t.name.dropLast(".weight".count))
            guard t.shape.count == 2, t.shape.allSatisfy({ $0 > 0 }) else { return nil }
            if let bias = byName[ArchSpec.name(prefix, "bias")] {
                guard bias.shape == [t.shape[0]] else { return nil }
                covered.insert(bias.name)
            }
            covered.insert(t.name)
            prefixes.append(prefix)
        }
        guard !prefixes.isEmpty, covered.count == tensors.count else { return nil }
        let shapes = prefixes.compactMap { byName[ArchSpec.name($0, "weight")]?.shape }
        for (a, b) in zip(shapes, shapes.dropFirst()) where a[0] != b[1] { return nil }
        return ArchSpec(steps: prefixes.map { .linear(prefix: $0) })
    }

    /// The first path component of a tensor name (`state_dict` of `state_dict.0.weight`).
    static func topLevel(_ name: String) -> String {
        String(name.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)[0])
    }

    static func orderedUnique(_ items: [String]) -> [String] {
        var seen = Set<String>()
        return items.filter { seen.insert($0).inserted }
    }

    /// The floating-point tensors a spec must use: all of them, except in a training checkpoint
    /// (plain values beside the tensors) whose spec names only tensors under one top-level entry
    /// (`linear:state_dict.0,…`), where the entries beside it (optimizer state) are not part of
    /// the head.
    static func tensorsToUse(_ spec: ArchSpec, in d: FileDescription) -> [DescribedTensor] {
        let floats = d.tensors.filter(\.isFloatingPoint)
        let tops = Set(spec.prefixes.map(topLevel))
        guard !d.metadata.isEmpty, tops.count == 1, let top = tops.first, !spec.prefixes.contains(top) else { return floats }
        return floats.filter { topLevel($0.name) == top }
    }
}

import Foundation
import Runtime

/// What a pickle may ask of its unpickler and still be `safe` (docs/SCAN.md, "Pickles"): the
/// globals, calls and persistent ids `torch.save` writes for a state dict of tensors, and
/// nothing else. The same list `TorchPickleReader` converts by (`TorchGlobal.allowed`).
public enum PickleAllowlist {
    /// Globals an unpickler may import: `collections.OrderedDict`, torch's tensor and parameter
    /// rebuild functions, its storage classes and its dtype objects.
    public static func allowsImport(module: String, name: String) -> Bool {
        TorchGlobal.allowed(module: module, name: name) != nil
    }

    /// Globals that may be called (REDUCE, NEWOBJ): the dict class and the rebuild functions.
    /// Storage classes and dtypes are only ever passed as arguments.
    public static func allowsCall(module: String, name: String) -> Bool {
        switch TorchGlobal.allowed(module: module, name: name) {
        case .orderedDict, .rebuildTensorV2, .rebuildTensorV3, .rebuildParameter: return true
        default: return false
        }
    }

    /// A persistent id torch's loader resolves to a storage record of the same file:
    /// `('storage', <allowlisted storage class>, key, location, numel[, None])`.
    static func allowsPersistentId(_ pid: PickleSymbol) -> (allowed: Bool, described: String) {
        guard case .tuple(let items, _) = pid else { return (false, "persistent id \(pid.described)") }
        guard items.count == 5 || items.count == 6, case .text("storage") = items[0] else {
            let tag: String
            if case .text(let t)? = items.first { tag = "'\(t.prefix(64))'" } else { tag = items.first?.described ?? "empty" }
            return (false, "persistent id \(tag) (tuple of \(items.count)), not a torch storage")
        }
        var storageClass = items[1].described
        var ok = false
        if case .global(let m, let n) = items[1] {
            storageClass = "\(m).\(n)"
            switch TorchGlobal.allowed(module: m, name: n) {
            case .typedStorage, .untypedStorage: ok = true
            default: break
            }
        }
        if case .text = items[2] {} else { ok = false }
        if case .text = items[3] {} else { ok = false }
        if case .value("int") = items[4] {} else { ok = false }
        if items.count == 6, case .value("None") = items[5] {} else if items.count == 6 { ok = false }
        return (ok, "torch storage of \(storageClass)")
    }
}

import Foundation
import Runtime

/// PyTorch checkpoints (`torch.save`, zip and legacy containers), described as their
/// state-dict tensors. The pickle is read by an allowlist and never executed.
enum TorchReader {
    /// Pickle protocol 2, then the LONG1 of torch's legacy magic number 0x1950a86a20f9469cfc6c.
    static let legacyPrefix: [UInt8] = [0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]

    static let legacy = FormatReader(kind: .torchLegacy, matches: { $0.starts(with: legacyPrefix) }, describe: describe)
    static let zip = FormatReader(kind: .torchZip, matches: { probe in
        probe.zipMembers?.contains { $0 == "data.pkl" || $0.hasSuffix("/data.pkl") } == true
    }, describe: describe)

    static func describe(_ bytes: Data, limits: ReaderLimits) throws -> FileDescription {
        let checkpoint = try TorchCheckpoint(bytes: bytes, limits: limits)
        let kind: FileKind = checkpoint.container == .zip ? .torchZip : .torchLegacy
        let note = checkpoint.container == .zip ? "torch zip container (torch.save since 1.6)" : "torch legacy container (before 1.6)"
        return FileDescription(format: kind, tensors: checkpoint.tensors.map(DescribedTensor.init),
                               metadata: checkpoint.values, notes: [note])
    }
}

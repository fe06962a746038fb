import Foundation
import Runtime

/// Outputs never clobber inputs: an output path that names an input file, directly or through
/// a hard link or symlink, is refused before any work.
public enum OutputSafety {
    /// Throws `.usage` when `output` is the same file (device and inode) as one of `inputs`,
    /// each given with its role (`input`, `model`, `reference`) for the message.
    public static func refuseClobbering(_ output: String, inputs: [(role: String, path: String)]) throws {
        guard let target = identity(output) else { return }
        for (role, path) in inputs where identity(path) == target {
            throw ClipSafetyError.usage("the output \(output) is the \(role) file \(path)\(path == output ? "" : " (the same file through a link)"); writing it would destroy the \(role)")
        }
    }

    /// Device and inode of the file `path` names (following symlinks), or nil when none exists.
    static func identity(_ path: String) -> [UInt64]? {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        return [UInt64(st.st_dev), UInt64(st.st_ino)]
    }
}

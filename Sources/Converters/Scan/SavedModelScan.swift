import Foundation
import Runtime

/// TensorFlow SavedModels: every node of every meta graph and of every function in its
/// library is checked against the allowlist of ops that only compute (docs/SCAN.md). Ops that
/// read or write files (checkpoint save/restore, table initialisation from a text file) are
/// allowed only when the path comes from the loader (a placeholder or function argument: the
/// model's own checkpoint and assets), never from a constant in the graph.
enum SavedModelScan {
    static func scanGraph(_ bytes: Data, part: String, into c: inout ScanCollector, limits: ReaderLimits) {
        let model: Tensorflow_SavedModel
        do {
            model = try SavedModelProtobuf.decode(Tensorflow_SavedModel.self, from: bytes, what: part, limits: limits)
        } catch {
            return c.fail(error, in: part)
        }
        guard !model.metaGraphs.isEmpty else { return c.fail("no meta graph", in: part) }
        var nodes = 0
        for (m, meta) in model.metaGraphs.enumerated() {
            let graph = Scope(nodes: meta.graphDef.node, arguments: [])
            nodes += check(graph, part: "\(part): meta graph \(m)", into: &c)
            for function in meta.graphDef.library.function {
                let scope = Scope(nodes: function.nodeDef, arguments: Set(function.signature.inputArg.map(\.name)))
                nodes += check(scope, part: "\(part): function \(function.signature.name)", into: &c)
            }
        }
        c.notes.append("\(part): \(nodes) graph nodes checked")
    }

    static func scanKerasMetadata(_ bytes: Data, part: String, into c: inout ScanCollector, limits: ReaderLimits) {
        do {
            let proto = try SavedModelProtobuf.decode(Keras_SavedMetadata.self, from: bytes, what: part, limits: limits)
            for node in proto.nodes where !node.metadata.isEmpty {
                KerasConfigScan.scan(data: Data(node.metadata.utf8), part: "\(part): \(node.nodePath)", revivedFromGraph: true, into: &c, limits: limits)
            }
        } catch {
            c.fail(error, in: part)
        }
    }

    /// The nodes of one graph or function body, by name, and the function's argument names.
    struct Scope {
        var byName: [String: Tensorflow_NodeDef] = [:]
        var nodes: [Tensorflow_NodeDef]
        var arguments: Set<String>

        init(nodes: [Tensorflow_NodeDef], arguments: Set<String>) {
            self.nodes = nodes
            self.arguments = arguments
            for n in nodes { byName[n.name] = n }
        }

        /// True when some data input of `node`, followed upwards (at most 512 nodes), is a
        /// function argument or a placeholder: a value the loader supplies.
        func fedByLoader(_ node: Tensorflow_NodeDef) -> Bool {
            var queue = node.input.filter { !$0.hasPrefix("^") }
            var seen = Set<String>()
            while let ref = queue.popLast(), seen.count < 512 {
                let name = String(ref.split(separator: ":").first ?? "")
                guard seen.insert(name).inserted else { continue }
                if arguments.contains(name) { return true }
                guard let n = byName[name] else { continue }
                if n.op == "Placeholder" || n.op == "PlaceholderWithDefault" { return true }
                queue += n.input.filter { !$0.hasPrefix("^") }
            }
            return false
        }
    }

    /// Checks every node of a scope; returns how many there were.
    static func check(_ scope: Scope, part: String, into c: inout ScanCollector) -> Int {
        for node in scope.nodes {
            let at = ScanLocation(part: "\(part): node \(node.name.prefix(200))")
            if computeOps.contains(node.op) { continue }
            if node.op == "PrintV2", let stream = node.attr["output_stream"]?.s, !String(decoding: stream, as: UTF8.self).hasPrefix("file://") {
                continue
            }
            if loaderPathOps.contains(node.op) {
                let own = scope.fedByLoader(node)
                c.add(.op, node.op, allowed: own, at: at,
                      detail: own ? "path supplied by the loader (the model's own checkpoint or assets)" : "path fixed in the graph, not the model's own files")
                continue
            }
            c.add(.op, node.op, allowed: false, at: at, detail: outsideOps[node.op] ?? "not on the allowlist of ops that only compute")
        }
        return scope.nodes.count
    }

    /// Ops that read or write the files the loader names: the checkpoint being restored, the
    /// SavedModel's assets.
    static let loaderPathOps: Set<String> = [
        "SaveV2", "RestoreV2", "MergeV2Checkpoints", "Save", "SaveSlices", "Restore", "RestoreSlice",
        "InitializeTableFromTextFile", "InitializeTableFromTextFileV2",
    ]

    /// Why well-known ops outside the allowlist are there.
    static let outsideOps: [String: String] = [
        "ReadFile": "reads a file", "WriteFile": "writes a file", "MatchingFiles": "lists files",
        "PyFunc": "calls Python code", "PyFuncStateless": "calls Python code", "EagerPyFunc": "calls Python code",
        "ImmutableConst": "maps a file into memory", "TFRecordDataset": "reads files", "TFRecordDatasetV2": "reads files",
        "FixedLengthRecordDataset": "reads files", "FixedLengthRecordDatasetV2": "reads files", "TextLineDataset": "reads files",
        "CSVDataset": "reads files", "CSVDatasetV2": "reads files", "SqlDataset": "runs SQL queries", "LMDBDataset": "reads files",
        "SaveDataset": "writes files", "SaveDatasetV2": "writes files", "LoadDataset": "reads files", "SnapshotDataset": "reads and writes files",
        "WholeFileReader": "reads files", "WholeFileReaderV2": "reads files", "TextLineReader": "reads files",
        "TextLineReaderV2": "reads files", "TFRecordReader": "reads files", "TFRecordReaderV2": "reads files",
        "LoadAndRemapMatrix": "reads a checkpoint", "CreateSummaryFileWriter": "writes files", "WriteSummary": "writes files",
        "DebugIdentity": "sends tensors to debug URLs", "DebugIdentityV2": "writes debug files", "PrintV2": "writes to a file",
        "Print": "writes to standard error",
    ]

    /// Ops that only compute on tensors, variables and lookup tables held in memory, and the
    /// call and control-flow ops whose bodies are checked as functions of the library.
    static let computeOps: Set<String> = [
        // Structure, calls and control flow.
        "Const", "Placeholder", "PlaceholderWithDefault", "Identity", "IdentityN", "NoOp", "StatefulPartitionedCall",
        "PartitionedCall", "If", "StatelessIf", "While", "StatelessWhile", "Case", "StatelessCase", "Merge", "Switch",
        "Enter", "Exit", "NextIteration", "LoopCond", "ControlTrigger", "StopGradient", "PreventGradient", "CheckNumerics",
        "CheckNumericsV2", "Assert", "EnsureShape", "Snapshot", "OptionalFromValue", "OptionalNone", "OptionalHasValue",
        "OptionalGetValue",
        // The next element of an iterator the caller passes in (Keras' train and test functions);
        // ops that create datasets from files are outside.
        "IteratorGetNext", "IteratorGetNextSync", "IteratorGetNextAsOptional",
        // Variables and resources.
        "VarHandleOp", "ReadVariableOp", "AssignVariableOp", "AssignAddVariableOp", "AssignSubVariableOp",
        "VarIsInitializedOp", "DestroyResourceOp", "Variable", "VariableV2", "Assign", "AssignAdd", "AssignSub",
        "ResourceGather", "DisableCopyOnRead", "ConsumeMutexLock", "MutexV2", "MutexLock",
        // Lookup tables held in memory.
        "HashTable", "HashTableV2", "MutableHashTable", "MutableHashTableV2", "MutableHashTableOfTensorsV2",
        "MutableDenseHashTableV2", "LookupTableFindV2", "LookupTableImportV2", "LookupTableInsertV2",
        "LookupTableRemoveV2", "LookupTableSizeV2", "LookupTableExportV2", "InitializeTableV2", "InitializeTable",
        "AnonymousHashTable", "AnonymousMutableHashTable",
        // Arithmetic.
        "Add", "AddV2", "AddN", "Sub", "Mul", "MulNoNan", "Div", "DivNoNan", "RealDiv", "FloorDiv", "FloorMod", "Mod",
        "TruncateDiv", "TruncateMod", "Maximum", "Minimum", "Neg", "Abs", "Sign", "Square", "Sqrt", "Rsqrt", "Exp",
        "Expm1", "Log", "Log1p", "Pow", "Reciprocal", "Inv", "SquaredDifference", "Floor", "Ceil", "Round", "Rint",
        "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Atan2", "Sinh", "Cosh", "Tanh", "Asinh", "Acosh", "Atanh",
        "Erf", "Erfc", "Lgamma", "Digamma", "IsNan", "IsInf", "IsFinite", "ClipByValue", "Xlogy", "Xdivy",
        // Neural-network ops.
        "MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3", "Einsum", "BiasAdd", "BiasAddV1", "Relu", "Relu6",
        "Elu", "Selu", "LeakyRelu", "Sigmoid", "Softmax", "LogSoftmax", "Softplus", "Softsign", "Conv2D", "Conv3D",
        "DepthwiseConv2dNative", "Conv2DBackpropInput", "Conv3DBackpropInputV2", "MaxPool", "MaxPoolV2", "AvgPool",
        "MaxPool3D", "AvgPool3D", "FusedBatchNorm", "FusedBatchNormV2", "FusedBatchNormV3", "L2Loss", "LRN",
        "ResizeBilinear", "ResizeNearestNeighbor", "ResizeBicubic", "ResizeArea", "TopKV2", "InTopKV2", "OneHot",
        "BroadcastTo", "BroadcastArgs", "BroadcastGradientArgs", "Cumsum", "Cumprod", "MatrixBandPart",
        "MatrixDiag", "MatrixDiagV3", "MatrixDiagPartV3", "MatrixSetDiagV3", "Cross", "Bucketize",
        "StatelessRandomUniformV2", "StatelessRandomNormalV2", "StatelessRandomGetKeyCounter", "StatelessRandomUniform",
        "StatelessRandomNormal", "StatelessTruncatedNormal", "RandomUniform", "RandomStandardNormal", "TruncatedNormal",
        "RandomUniformInt",
        // Shapes and layout.
        "Cast", "Bitcast", "Reshape", "Squeeze", "ExpandDims", "Transpose", "ConcatV2", "Concat", "ConcatOffset",
        "Pack", "Unpack", "Split", "SplitV", "Slice", "StridedSlice", "Gather", "GatherV2", "GatherNd", "ScatterNd",
        "TensorScatterUpdate", "TensorScatterAdd", "Tile", "Fill", "ZerosLike", "OnesLike", "Shape", "ShapeN", "Size",
        "Rank", "Range", "Pad", "PadV2", "MirrorPad", "ReverseV2", "Where", "Select", "SelectV2", "Unique", "UniqueWithCounts",
        "SparseToDense", "DynamicStitch", "DynamicPartition", "Empty", "TensorListReserve", "TensorListFromTensor",
        "TensorListStack", "TensorListGetItem", "TensorListSetItem", "TensorListLength", "TensorListElementShape",
        "TensorListPushBack", "TensorListPopBack", "RaggedTensorToTensor", "RaggedTensorFromVariant", "RaggedTensorToVariant",
        // Reductions and comparisons.
        "Sum", "Mean", "Prod", "Max", "Min", "ArgMax", "ArgMin", "All", "Any", "Equal", "NotEqual", "Less", "LessEqual",
        "Greater", "GreaterEqual", "LogicalAnd", "LogicalOr", "LogicalNot",
        // Strings in memory (the saver's path building, categorical encodings).
        "StringJoin", "ShardedFilename", "StaticRegexFullMatch", "StaticRegexReplace", "RegexFullMatch", "RegexReplace",
        "AsString", "StringToNumber", "StringToHashBucketFast", "StringToHashBucketStrong", "StringSplitV2",
        "StringLower", "StringUpper", "StringStrip", "StringLength", "Substr", "StringFormat", "StringNGrams",
        "UnicodeDecode", "UnicodeEncode",
    ]
}

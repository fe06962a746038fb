import Foundation
import Runtime

/// The StringLookup vocabularies of a Keras SavedModel's serving signature, and the input
/// column each belongs to, established by tracing the GraphDef.
///
/// From the `serving_default` output node the trace descends through the function library
/// into every `LookupTableFindV2`. Walking back from its key input it must find `AsString` of
/// one output `k` of a `SplitV` into single columns of (a `Cast` of) the serving input: that
/// `k` is the column. Walking back from its table input (through function arguments and
/// `Identity`) it reaches the main-graph node that creates the table; the initialiser that
/// `__saved_model_init_op` runs for that table (`LookupTableImportV2`) names the `Const` keys
/// and values. Nothing is assumed about the order of the Const nodes or of the layers.
struct SavedModelVocabularies {
    struct Vocabulary: Equatable {
        var column: Int
        var keys: [Data]
        var values: [Int64]
        var oovIndex: Int64
        /// What `AsString` formats: the input rounded to this dtype (`.f32` when the graph casts
        /// the float64 input to float32 first, as autokeras' MultiCategoryEncoding does).
        var keyDType: DType
        /// Names of the main-graph Const nodes the vocabulary came from (for messages, tests).
        var keysNode: String
        var valuesNode: String
    }

    /// Width of the serving input (its last dimension).
    var inputWidth: Int
    /// One vocabulary per categorical column, ordered by column.
    var vocabularies: [Vocabulary]
    /// The `serving_default` signature the trace started from (for `inspect`).
    var signature: ServingSignature?

    /// Upper bound on graph nodes visited while tracing (a hostile graph cannot make it spin).
    static let maxVisits = 4_000_000

    init(savedModel bytes: Data, limits: ReaderLimits) throws {
        let model = try SavedModelProtobuf.decode(Tensorflow_SavedModel.self, from: bytes, what: "saved_model.pb", limits: limits)
        let serving = model.metaGraphs.filter { $0.metaInfoDef.tags.contains("serve") }
        guard serving.count == 1, let meta = serving.first else {
            throw ClipSafetyError.unsupported("saved_model.pb: expected one MetaGraph tagged 'serve', found \(serving.count)")
        }
        var tracer = Tracer(graph: meta.graphDef, limits: limits)
        try tracer.run(meta: meta)
        inputWidth = tracer.inputWidth
        vocabularies = tracer.vocabularies.sorted { $0.column < $1.column }
        signature = tracer.signature
    }

    /// A scope nodes are looked up in: the main graph, or one call of a library function.
    final class Frame {
        let function: Tensorflow_FunctionDef?
        let nodes: [String: Tensorflow_NodeDef]
        let arguments: [String: Int]
        /// The call node (in `parent`) that invoked this function.
        let call: Tensorflow_NodeDef?
        let parent: Frame?
        let depth: Int

        init(graph: Tensorflow_GraphDef) {
            function = nil
            nodes = Dictionary(graph.node.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            arguments = [:]
            call = nil
            parent = nil
            depth = 0
        }

        init(function: Tensorflow_FunctionDef, call: Tensorflow_NodeDef, parent: Frame) {
            self.function = function
            nodes = Dictionary(function.nodeDef.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            var args: [String: Int] = [:]
            for (i, a) in function.signature.inputArg.enumerated() { args[a.name] = i }
            arguments = args
            self.call = call
            self.parent = parent
            depth = parent.depth + 1
        }

        var isMain: Bool { function == nil }
        var where_: String { function.map { "function \($0.signature.name)" } ?? "main graph" }
    }

    /// A node found by resolving a tensor reference, with the output index it was referenced by.
    struct Resolved {
        var frame: Frame
        var node: Tensorflow_NodeDef
        var output: Int
    }

    struct Tracer {
        let graph: Tensorflow_GraphDef
        let limits: ReaderLimits
        let functions: [String: Tensorflow_FunctionDef]
        var visits = 0
        var inputWidth = 0
        var vocabularies: [Vocabulary] = []
        var signature: ServingSignature?

        init(graph: Tensorflow_GraphDef, limits: ReaderLimits) {
            self.graph = graph
            self.limits = limits
            functions = Dictionary(graph.library.function.map { ($0.signature.name, $0) }, uniquingKeysWith: { a, _ in a })
        }

        mutating func run(meta: Tensorflow_MetaGraphDef) throws {
            guard let signature = meta.signatureDef["serving_default"] else {
                throw ClipSafetyError.unsupported("saved_model.pb: no 'serving_default' signature")
            }
            guard signature.inputs.count == 1, let input = signature.inputs.values.first,
                  signature.outputs.count == 1, let output = signature.outputs.values.first else {
                throw ClipSafetyError.unsupported("saved_model.pb: serving_default must have one input and one output (has \(signature.inputs.count) and \(signature.outputs.count))")
            }
            guard input.dtype == .dtDouble || input.dtype == .dtFloat || input.dtype == .dtHalf else {
                throw ClipSafetyError.unsupported("saved_model.pb: serving input is \(input.dtype.tfName), not floating point")
            }
            let dims = input.tensorShape.dim.map(\.size)
            guard dims.count == 2, let width = dims.last, width > 0, width <= Int64(Int32.max) else {
                throw ClipSafetyError.unsupported("saved_model.pb: serving input shape is not [batch, D]")
            }
            inputWidth = Int(width)
            self.signature = Self.describe(signature)
            let main = Frame(graph: graph)
            let inputNode = Self.nodeName(of: input.name)
            guard let placeholder = main.nodes[inputNode], placeholder.op == "Placeholder" else {
                throw ClipSafetyError.malformed("saved_model.pb: serving input '\(input.name)' is not a Placeholder of the graph")
            }
            guard let outputNode = main.nodes[Self.nodeName(of: output.name)] else {
                throw ClipSafetyError.malformed("saved_model.pb: serving output '\(output.name)' is not a node of the graph")
            }

            // Every table lookup the serving output depends on.
            var finds: [(Frame, Tensorflow_NodeDef)] = []
            try collect(op: ["LookupTableFindV2"], from: outputNode, in: main, into: &finds)

            // Every table initialiser the SavedModel runs at load time.
            var imports: [(Frame, Tensorflow_NodeDef)] = []
            if let initOp = meta.signatureDef["__saved_model_init_op"]?.outputs.values.first,
               let initNode = main.nodes[Self.nodeName(of: initOp.name)] {
                for ref in initNode.input {
                    let name = ref.hasPrefix("^") ? String(ref.dropFirst()) : Self.nodeName(of: ref)
                    guard let n = main.nodes[name] else {
                        throw ClipSafetyError.malformed("saved_model.pb: init op depends on missing node '\(name)'")
                    }
                    try collect(op: ["LookupTableImportV2", "InitializeTableV2"], from: n, in: main, into: &imports)
                }
            }

            var seenColumns = Set<Int>()
            for (frame, find) in finds {
                let v = try vocabulary(find: find, in: frame, placeholder: placeholder.name, imports: imports)
                guard seenColumns.insert(v.column).inserted else {
                    throw ClipSafetyError.unsupported("saved_model.pb: column \(v.column) is looked up in more than one table")
                }
                vocabularies.append(v)
            }
        }

        /// Collects nodes of the given ops in `node` and, through call nodes, in the functions
        /// it calls (recursively).
        mutating func collect(op ops: Set<String>, from node: Tensorflow_NodeDef, in frame: Frame,
                              into found: inout [(Frame, Tensorflow_NodeDef)]) throws {
            try tick()
            if ops.contains(node.op) { found.append((frame, node)) }
            guard let callee = node.attr["f"]?.func.name, !callee.isEmpty else { return }
            guard let function = functions[callee] else {
                throw ClipSafetyError.malformed("saved_model.pb: \(frame.where_) calls missing function '\(callee)'")
            }
            guard frame.depth < limits.maxDepth else {
                throw ClipSafetyError.limitExceeded("saved_model.pb: function calls nest deeper than \(limits.maxDepth)")
            }
            // TensorFlow runs no recursive function a SavedModel traces; one that calls itself
            // (directly or through others) would only make this trace unroll it.
            var caller: Frame? = frame
            while let f = caller {
                if f.function?.signature.name == callee {
                    throw ClipSafetyError.malformed("saved_model.pb: function '\(callee)' calls itself (from \(frame.where_))")
                }
                caller = f.parent
            }
            let inner = Frame(function: function, call: node, parent: frame)
            for n in function.nodeDef {
                try collect(op: ops, from: n, in: inner, into: &found)
            }
        }

        mutating func tick() throws {
            visits += 1
            guard visits <= SavedModelVocabularies.maxVisits else {
                throw ClipSafetyError.limitExceeded("saved_model.pb: graph trace visits more than \(SavedModelVocabularies.maxVisits) nodes")
            }
        }

        /// `name`, `name:0` or `^name` (main graph), `name:out:0` (function body) → `name`.
        /// The one-input, one-output `serving_default` signature in format-neutral terms.
        static func describe(_ signature: Tensorflow_SignatureDef) -> ServingSignature? {
            guard let (inName, input) = signature.inputs.first, let (outName, output) = signature.outputs.first else { return nil }
            func port(_ name: String, _ info: Tensorflow_TensorInfo) -> ServingSignature.Port {
                let shape: [Int?]? = info.tensorShape.unknownRank ? nil
                    : info.tensorShape.dim.map { $0.size >= 0 && $0.size <= Int64(Int32.max) ? Int($0.size) : nil }
                return .init(name: name, tensor: info.name, dtype: info.dtype.tfName, shape: shape)
            }
            return ServingSignature(key: "serving_default", input: port(inName, input), output: port(outName, output))
        }

        static func nodeName(of ref: String) -> String {
            let r = ref.hasPrefix("^") ? ref.dropFirst() : Substring(ref)
            return String(r.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? r)
        }

        static func dataInputs(_ node: Tensorflow_NodeDef) -> [String] {
            node.input.filter { !$0.hasPrefix("^") }
        }

        /// Follows a tensor reference back through function arguments (to the caller's input)
        /// and `Identity` nodes to the node that produces it.
        mutating func resolve(_ ref: String, in start: Frame) throws -> Resolved {
            var frame = start
            var ref = ref
            // References followed so far, per frame: Identity nodes that feed each other loop.
            var followed = Set<String>()
            while true {
                try tick()
                guard followed.insert("\(ObjectIdentifier(frame).hashValue) \(ref)").inserted else {
                    throw ClipSafetyError.malformed("saved_model.pb: '\(ref)' in \(frame.where_) is reached again while following its inputs (a cycle)")
                }
                let parts = ref.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
                let name = parts.first ?? ref
                if !frame.isMain, parts.count == 1, let argIndex = frame.arguments[name] {
                    guard let call = frame.call, let parent = frame.parent else {
                        throw ClipSafetyError.malformed("saved_model.pb: argument '\(name)' of \(frame.where_) has no caller")
                    }
                    let inputs = Self.dataInputs(call)
                    guard argIndex < inputs.count else {
                        throw ClipSafetyError.malformed("saved_model.pb: call '\(call.name)' passes \(inputs.count) inputs to \(frame.where_), which reads argument \(argIndex)")
                    }
                    ref = inputs[argIndex]
                    frame = parent
                    continue
                }
                guard let node = frame.nodes[name] else {
                    throw ClipSafetyError.malformed("saved_model.pb: \(frame.where_) refers to missing node '\(name)'")
                }
                if node.op == "Identity", let next = Self.dataInputs(node).first {
                    ref = next
                    continue
                }
                let output = parts.count > 1 ? Int(parts[parts.count - 1]) ?? -1 : 0
                guard output >= 0 else {
                    throw ClipSafetyError.malformed("saved_model.pb: bad tensor reference '\(ref)' in \(frame.where_)")
                }
                return Resolved(frame: frame, node: node, output: output)
            }
        }

        mutating func input(_ node: Tensorflow_NodeDef, _ i: Int, in frame: Frame) throws -> Resolved {
            let inputs = Self.dataInputs(node)
            guard i < inputs.count else {
                throw ClipSafetyError.malformed("saved_model.pb: node '\(node.name)' (\(node.op)) has \(inputs.count) inputs, needs \(i + 1)")
            }
            return try resolve(inputs[i], in: frame)
        }

        mutating func vocabulary(find: Tensorflow_NodeDef, in frame: Frame, placeholder: String,
                                 imports: [(Frame, Tensorflow_NodeDef)]) throws -> Vocabulary {
            let what = "lookup '\(find.name)'"
            // Key: AsString(SplitV(Cast*(input))[column]).
            let asString = try input(find, 1, in: frame)
            guard asString.node.op == "AsString" else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) looks up \(asString.node.op) '\(asString.node.name)', not AsString of an input column")
            }
            let formatted = try Self.checkAsString(asString.node)
            let split = try input(asString.node, 0, in: asString.frame)
            guard split.node.op == "SplitV" else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) formats \(split.node.op) '\(split.node.name)', not a SplitV of the input columns")
            }
            try checkSplit(split, width: inputWidth, what: what)
            var source = try input(split.node, 0, in: split.frame)
            var types: [Tensorflow_DataType] = [formatted]
            while source.node.op == "Cast" {
                types.append(source.node.attr["DstT"]?.type ?? .dtInvalid)
                source = try input(source.node, 0, in: source.frame)
            }
            guard source.frame.isMain, source.node.name == placeholder else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) reads '\(source.node.name)', not the serving input")
            }
            let keyDType: DType
            if types.allSatisfy({ $0 == .dtDouble }) {
                keyDType = .f64
            } else if types.allSatisfy({ $0 == .dtDouble || $0 == .dtFloat }) {
                keyDType = .f32
            } else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) formats the input after casts to \(types.map(\.tfName)); only float32/float64 are supported")
            }

            // Table and default value.
            let table = try input(find, 0, in: frame)
            guard table.frame.isMain else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) uses a table created inside \(table.frame.where_)")
            }
            let defaultValue = try input(find, 2, in: frame)
            let oov = try Self.int64s(defaultValue.node, what: "\(what) default value", limits: limits)
            guard oov.count == 1, let oovIndex = oov.first else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) default value is not a scalar")
            }

            // The initialiser of that table, run by the init op.
            var matches: [(Resolved, Resolved)] = []
            for (f, node) in imports {
                let t = try input(node, 0, in: f)
                guard t.frame.isMain, t.node.name == table.node.name else { continue }
                matches.append((try input(node, 1, in: f), try input(node, 2, in: f)))
            }
            guard matches.count == 1, let (keysNode, valuesNode) = matches.first else {
                throw ClipSafetyError.unsupported("saved_model.pb: the table '\(table.node.name)' of \(what) has \(matches.count) initialisers; expected one from Const keys and values")
            }
            let keys = try Self.strings(keysNode.node, what: "\(what) keys", limits: limits)
            let values = try Self.int64s(valuesNode.node, what: "\(what) values", limits: limits)
            guard keys.count == values.count else {
                throw ClipSafetyError.malformed("saved_model.pb: \(what) vocabulary has \(keys.count) keys and \(values.count) values")
            }
            return Vocabulary(column: split.output, keys: keys, values: values, oovIndex: oovIndex, keyDType: keyDType,
                              keysNode: keysNode.node.name, valuesNode: valuesNode.node.name)
        }

        /// `AsString` with TensorFlow's default formatting (C `%f`) of a float; returns its `T`.
        static func checkAsString(_ node: Tensorflow_NodeDef) throws -> Tensorflow_DataType {
            let t = node.attr["T"]?.type ?? .dtInvalid
            guard t == .dtFloat || t == .dtDouble else {
                throw ClipSafetyError.unsupported("saved_model.pb: AsString '\(node.name)' formats \(t.tfName); only float32/float64 are supported")
            }
            for (key, value) in node.attr where !key.hasPrefix("_") && key != "T" {
                let isDefault: Bool
                switch key {
                case "precision", "width": isDefault = value.i == -1
                case "scientific", "shortest": isDefault = value.b == false
                case "fill": isDefault = value.s.isEmpty
                default: isDefault = false
                }
                guard isDefault else {
                    throw ClipSafetyError.unsupported("saved_model.pb: AsString '\(node.name)' sets '\(key)'; only the default %f formatting is supported")
                }
            }
            return t
        }

        /// The SplitV must cut the last axis of a [batch, width] tensor into width single columns.
        mutating func checkSplit(_ split: Resolved, width: Int, what: String) throws {
            let node = split.node
            let sizes = try Self.int64s(try input(node, 1, in: split.frame).node, what: "SplitV '\(node.name)' sizes", limits: limits)
            let axis = try Self.int64s(try input(node, 2, in: split.frame).node, what: "SplitV '\(node.name)' axis", limits: limits)
            guard sizes.count == width, sizes.allSatisfy({ $0 == 1 }), axis == [-1] || axis == [1],
                  split.output < width else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) reads SplitV '\(node.name)', which does not split the \(width) input columns one by one")
            }
        }

        static func constTensor(_ node: Tensorflow_NodeDef, what: String) throws -> Tensorflow_TensorProto {
            guard node.op == "Const", let value = node.attr["value"], case .tensor(let t)? = value.value else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) comes from \(node.op) '\(node.name)', not a Const")
            }
            return t
        }

        static func elementCount(_ t: Tensorflow_TensorProto, what: String, limits: ReaderLimits) throws -> Int {
            guard let shape = t.tensorShape.knownDims, let (n, _) = checkedByteCount(shape: shape, dtype: 1) else {
                throw ClipSafetyError.malformed("saved_model.pb: \(what) has an invalid shape")
            }
            guard n <= limits.maxTensorElements else {
                throw ClipSafetyError.limitExceeded("saved_model.pb: \(what) has \(n) elements, over the limit of \(limits.maxTensorElements)")
            }
            return n
        }

        /// Values of an integer Const (int32 or int64; `tensor_content` or the typed field).
        static func int64s(_ node: Tensorflow_NodeDef, what: String, limits: ReaderLimits) throws -> [Int64] {
            let t = try constTensor(node, what: what)
            let n = try elementCount(t, what: what, limits: limits)
            let width: Int
            switch t.dtype {
            case .dtInt64: width = 8
            case .dtInt32: width = 4
            default:
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) is \(t.dtype.tfName), not an integer")
            }
            if !t.tensorContent.isEmpty {
                guard t.tensorContent.count == n * width else {
                    throw ClipSafetyError.malformed("saved_model.pb: \(what) holds \(t.tensorContent.count) bytes for \(n) values")
                }
                var cursor = ByteCursor(t.tensorContent)
                return try (0..<n).map { _ in
                    let v: Int64? = width == 8 ? cursor.readInteger(Int64.self, endianness: .little)
                        : cursor.readInteger(Int32.self, endianness: .little).map(Int64.init)
                    guard let v else { throw ClipSafetyError.truncated("saved_model.pb: \(what) is cut short") }
                    return v
                }
            }
            let values = t.dtype == .dtInt64 ? t.int64Val : t.intVal.map(Int64.init)
            guard values.count == n else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) stores \(values.count) values for \(n) elements")
            }
            return values
        }

        /// Values of a string Const.
        static func strings(_ node: Tensorflow_NodeDef, what: String, limits: ReaderLimits) throws -> [Data] {
            let t = try constTensor(node, what: what)
            let n = try elementCount(t, what: what, limits: limits)
            guard t.dtype == .dtString else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) is \(t.dtype.tfName), not string")
            }
            guard t.tensorContent.isEmpty, t.stringVal.count == n else {
                throw ClipSafetyError.unsupported("saved_model.pb: \(what) stores \(t.stringVal.count) strings for \(n) elements")
            }
            return t.stringVal
        }
    }
}

import Foundation
import Runtime

/// Keras configs (`.keras` config.json, `.h5` model_config and training_config, SavedModel
/// keras_metadata.pb): every serialised object (`{"class_name": …}`) anywhere in the JSON is
/// checked. Outside the allowlist: `Lambda` layers and `__lambda__` functions (marshalled
/// Python bytecode), `TFSMLayer` (loads another SavedModel from a path), a `module` outside
/// Keras (`os`, `builtins`, …, imported by name), registered custom objects
/// (`registered_name` `package>Name`), and in configs without modules (Keras 2) a class that is
/// not a Keras built-in.
enum KerasConfigScan {
    static func scan(data: Data, part: String, revivedFromGraph: Bool, into c: inout ScanCollector, limits: ReaderLimits) {
        do {
            let json = try JSONValue(parsing: data, what: part, limits: limits)
            walk(json, path: "", part: part, revivedFromGraph: revivedFromGraph, into: &c)
        } catch {
            c.fail(error, in: part)
        }
    }

    static func walk(_ value: JSONValue, path: String, part: String, revivedFromGraph: Bool, into c: inout ScanCollector) {
        switch value {
        case .array(let items):
            for (i, v) in items.enumerated() { walk(v, path: "\(path)[\(i)]", part: part, revivedFromGraph: revivedFromGraph, into: &c) }
        case .object(let o):
            if let cls = o["class_name"]?.string {
                check(object: value, className: cls, at: ScanLocation(part: "\(part): \(path.isEmpty ? "$" : path)"), revivedFromGraph: revivedFromGraph, into: &c)
            }
            for key in o.keys.sorted() {
                walk(o[key]!, path: path.isEmpty ? key : "\(path).\(key)", part: part, revivedFromGraph: revivedFromGraph, into: &c)
            }
        default:
            break
        }
    }

    static func check(object: JSONValue, className cls: String, at: ScanLocation, revivedFromGraph: Bool, into c: inout ScanCollector) {
        let module = object["module"]?.string
        let name = object["config"]?["name"]?.string.map { " '\($0.prefix(64))'" } ?? ""
        if cls == "Lambda" || cls == "__lambda__" {
            c.add(.lambda, cls == "Lambda" ? "Lambda layer\(name)" : "__lambda__ function", allowed: false, at: at, detail: lambdaCode(object))
            return
        }
        if cls == "TFSMLayer" {
            let path = object["config"]?["filepath"]?.string.map { "loads the SavedModel at '\($0.prefix(200))'" }
            c.add(.layer, "TFSMLayer\(name)", allowed: false, at: at, detail: path ?? "loads another SavedModel")
            return
        }
        if let module, module != "keras", !module.hasPrefix("keras.") {
            c.add(.moduleReference, "\(module).\(cls)", allowed: false, at: at, detail: "Keras imports the module by name")
            return
        }
        if let registered = object["registered_name"]?.string, registered.contains(">") {
            c.add(.customObject, registered, allowed: false, at: at, detail: "a custom object registered by user code")
            return
        }
        if module == nil, !cls.hasPrefix("__"), !builtins.contains(cls) {
            if revivedFromGraph {
                c.add(.customObject, cls, allowed: true, at: at, detail: "not a Keras class: revived from the SavedModel's graph, not from Python code")
            } else {
                c.add(.customObject, cls, allowed: false, at: at, detail: "not a Keras built-in: loading needs user code (custom_objects)")
            }
        }
    }

    /// The size of a Lambda's marshalled code: Keras 3 `{"class_name": "__lambda__", "config":
    /// {"code": base64}}`, Keras 2 `"function": [base64, defaults, closure]`, or a named function.
    static func lambdaCode(_ object: JSONValue) -> String {
        var code: String?
        if object["class_name"]?.string == "__lambda__" { code = object["config"]?["code"]?.string }
        let function = object["config"]?["function"]
        if let f = function?["config"]?["code"]?.string { code = f }
        if let f = function?.array?.first?.string { code = f }
        if let code {
            let bytes = Data(base64Encoded: code.filter { !$0.isWhitespace })?.count
            return "marshalled Python bytecode, \(bytes.map(String.init) ?? "undecodable, \(code.utf8.count) base64 characters") bytes"
        }
        if let named = function?.string {
            let module = object["config"]?["module"]?.string.map { $0 + "." } ?? ""
            return "calls the Python function \(module)\(named.prefix(100))"
        }
        return "Python code"
    }

    /// Keras built-in classes a config without modules (Keras 2) may name: layers, models,
    /// initializers, regularizers, constraints, optimizers, losses, metrics, dtype policies.
    static let builtins: Set<String> = [
        // Models.
        "Functional", "Sequential", "Model",
        // Core, activation and regularisation layers.
        "InputLayer", "Dense", "EinsumDense", "Activation", "Embedding", "Masking", "Identity",
        "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout", "GaussianNoise",
        "AlphaDropout", "ActivityRegularization", "ReLU", "LeakyReLU", "PReLU", "ELU", "ThresholdedReLU", "Softmax",
        // Normalisation and preprocessing.
        "BatchNormalization", "LayerNormalization", "GroupNormalization", "UnitNormalization", "Normalization",
        "Rescaling", "CenterCrop", "Resizing", "Discretization", "CategoryEncoding", "Hashing", "StringLookup",
        "IntegerLookup", "TextVectorization",
        // Reshaping and merging.
        "Flatten", "Reshape", "Permute", "RepeatVector", "Cropping1D", "Cropping2D", "Cropping3D",
        "UpSampling1D", "UpSampling2D", "UpSampling3D", "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D",
        "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate", "Dot",
        // Convolution and pooling.
        "Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose",
        "SeparableConv1D", "SeparableConv2D", "DepthwiseConv1D", "DepthwiseConv2D",
        "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D", "AveragePooling3D",
        "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
        "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
        // Recurrent and attention.
        "LSTM", "GRU", "SimpleRNN", "LSTMCell", "GRUCell", "SimpleRNNCell", "RNN", "Bidirectional",
        "TimeDistributed", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D", "Attention", "AdditiveAttention",
        "MultiHeadAttention",
        // Initializers.
        "GlorotUniform", "GlorotNormal", "HeUniform", "HeNormal", "LecunUniform", "LecunNormal", "Zeros", "Ones",
        "Constant", "RandomUniform", "RandomNormal", "TruncatedNormal", "VarianceScaling", "Orthogonal",
        // Regularizers and constraints.
        "L1", "L2", "L1L2", "OrthogonalRegularizer", "MaxNorm", "MinMaxNorm", "NonNeg", "UnitNorm",
        // Optimizers, losses and metrics (training_config).
        "Adam", "AdamW", "Adamax", "Adadelta", "Adagrad", "Nadam", "RMSprop", "SGD", "Ftrl", "Lion",
        "BinaryCrossentropy", "CategoricalCrossentropy", "SparseCategoricalCrossentropy", "MeanSquaredError",
        "MeanAbsoluteError", "Hinge", "Huber", "KLDivergence", "Poisson", "CosineSimilarity", "LogCosh",
        "MeanMetricWrapper", "Mean", "Sum", "Accuracy", "BinaryAccuracy", "CategoricalAccuracy",
        "SparseCategoricalAccuracy", "AUC", "Precision", "Recall",
        "ExponentialDecay", "PiecewiseConstantDecay", "PolynomialDecay", "InverseTimeDecay", "CosineDecay",
        // Shapes and specs Keras 2 writes into SavedModel metadata.
        "TensorShape", "TypeSpec", "InputSpec", "TensorSpec",
        // Dtype policies.
        "Policy", "DTypePolicy", "FloatDTypePolicy", "QuantizedDTypePolicy",
    ]
}

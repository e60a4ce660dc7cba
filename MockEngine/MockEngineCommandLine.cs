using System.Globalization;
using System.Text.Json;
using HybridServing.MockEngine.Performance;

namespace HybridServing.MockEngine;

/// <summary>A command line vLLM would refuse; the message is the one vLLM (or its argparse) prints.</summary>
public sealed class MockEngineOptionsException(string message) : Exception(message);

/// <summary>
/// Parses vLLM's <c>vllm serve</c> command line (plus our <c>--mock-*</c> flags). Hand-written
/// rather than System.CommandLine so that messages match argparse's and vLLM's word for word.
/// </summary>
public static class MockEngineCommandLine
{
    public const string RuntimeLoraUpdatingVariable = "VLLM_ALLOW_RUNTIME_LORA_UPDATING";
    public const string ApiKeyVariable = "VLLM_API_KEY";
    public const string ServerDevModeVariable = "VLLM_SERVER_DEV_MODE";

    /// <summary>vLLM's allowed <c>--max-lora-rank</c> values.</summary>
    public static readonly IReadOnlyList<int> AllowedLoraRanks = [1, 8, 16, 32, 64, 128, 256, 320, 512];

    /// <summary>vLLM's default model when neither a positional model nor <c>--model</c> is given.</summary>
    public const string DefaultModel = "Qwen/Qwen3-0.6B";

    /// <summary>True when the command line asks for <c>--help</c> / <c>-h</c>.</summary>
    public static bool WantsHelp(IReadOnlyList<string> args) => args.Any(a => a is "--help" or "-h");

    public const string Usage = """
        usage: MockEngine [serve] [MODEL] [options]

        vLLM's flags (same names and defaults as `vllm serve`):
          --model MODEL                  base model (default Qwen/Qwen3-0.6B); shapes known: meta-llama/Llama-3.1-8B[-Instruct], test/tiny
          --served-model-name NAME...    names the base model answers to; the first is the base name
          --host HOST                    IP address or localhost (default 0.0.0.0)
          --port PORT                    (default 8000; 0 picks a free port)
          --enable-lora                  enable LoRA adapters
          --max-loras N                  GPU adapter slots (default 1)
          --max-cpu-loras N              host-memory adapter cache, LRU (default max-loras)
          --max-lora-rank R              1, 8, 16, 32, 64, 128, 256, 320, 512 (default 16)
          --lora-modules ITEM...         name=path or {"name","path","base_model_name"}; loaded at start
          --api-key KEY                  or VLLM_API_KEY; guards /v1, /v2, /inference, /cohere
          --max-num-seqs N               batch size bound (default 256)
          --max-model-len N              context length (default from the model)
          --max-num-batched-tokens N     token budget per step (default max(8192, max-num-seqs))
          --block-size N                 KV-cache block size in tokens (default 16)
          --gpu-memory-utilization F     share of GPU memory for weights + KV cache (default 0.9)
          --enable-sleep-mode            allow POST /sleep?level=1|2 and POST /wake_up (MockEngine/README.md#sleep-mode)
        Environment: VLLM_ALLOW_RUNTIME_LORA_UPDATING=1|true enables /v1/load_lora_adapter and /v1/unload_lora_adapter.
        Environment: VLLM_SERVER_DEV_MODE=1|true mounts /sleep, /wake_up and /is_sleeping.

        MockEngine's own flags:
          --mock-profile NAME            performance calibration: h100-llama3-8b (default), tiny (default for --model test/tiny)
          --mock-time-scale F            model seconds per wall second (default 1; 10 = ten times faster)
          --mock-zero-latency            answer at once, bypassing the performance model (gateway benchmark)
          --mock-backend NAME            performance (default: modelled time, synthetic text) or onnx (a tiny
                                         transformer of test/tiny's shapes run by ONNX Runtime; adapters change answers)
          --mock-seed N                  seed for answer text, step jitter and fault injection (default 0)
          --mock-step-jitter F           relative spread of modelled step times, 0..0.5 (default 0: exact)
          --mock-kv-blocks N             KV-cache size in blocks (default: sized from the profile like vLLM)
          --mock-load-error-status S     400 (default) or 500 for rejected adapters (newer vLLM builds)
          --mock-unload-keeps-slot       reproduce the vLLM defect where unload does not free the GPU slot
          --mock-fail-rate F             fraction of inference requests answered 500
          --mock-spike-rate F            fraction of inference requests delayed by --mock-spike-ms (default 1000)
          --mock-crash-after N           after N inference requests the engine dies: 500s, /health 503, process exits 1
          --mock-expose-loaded-metric    also expose the proposed vllm:lora_adapter_loaded gauge
        """;

    private static readonly HashSet<string> MultiValued = ["--served-model-name", "--lora-modules"];

    private static readonly HashSet<string> Switches =
    [
        "--enable-lora", "--no-enable-lora", "--mock-zero-latency", "--mock-unload-keeps-slot", "--mock-expose-loaded-metric",
        "--enable-sleep-mode",
    ];

    private static readonly HashSet<string> Valued =
    [
        "--model", "--served-model-name", "--host", "--port", "--max-loras", "--max-cpu-loras", "--max-lora-rank",
        "--lora-modules", "--api-key", "--max-num-seqs", "--max-model-len", "--max-num-batched-tokens", "--block-size",
        "--gpu-memory-utilization",
        "--mock-profile", "--mock-backend", "--mock-time-scale", "--mock-seed", "--mock-kv-blocks", "--mock-load-error-status",
        "--mock-fail-rate", "--mock-spike-rate", "--mock-step-jitter", "--mock-spike-ms", "--mock-crash-after",
    ];

    /// <summary>
    /// Parses <paramref name="args"/>; <paramref name="environment"/> reads environment variables
    /// (injectable so parallel tests do not share process state). Throws
    /// <see cref="MockEngineOptionsException"/> naming the offending flag.
    /// </summary>
    public static MockEngineOptions Parse(IReadOnlyList<string> args, Func<string, string?> environment)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(environment);
        var values = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        var switches = new HashSet<string>(StringComparer.Ordinal);
        string? positionalModel = null;
        if (args.Count > 0 && args[0] == "serve") args = args.Skip(1).ToArray();

        for (var i = 0; i < args.Count; i++)
        {
            var arg = args[i];
            if (!arg.StartsWith("--", StringComparison.Ordinal))
            {
                if (positionalModel is null && i == 0) { positionalModel = arg; continue; }
                throw new MockEngineOptionsException($"unrecognized arguments: {arg}");
            }
            string flag = arg;
            string? inline = null;
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            if (eq > 0) { flag = arg[..eq]; inline = arg[(eq + 1)..]; }
            flag = flag.Replace('_', '-');

            if (Switches.Contains(flag))
            {
                if (inline is not null) throw new MockEngineOptionsException($"argument {flag}: ignored explicit argument '{inline}'");
                switches.Add(flag);
                if (flag == "--no-enable-lora") switches.Remove("--enable-lora");
                if (flag == "--enable-lora") switches.Remove("--no-enable-lora");
                continue;
            }
            if (!Valued.Contains(flag)) throw new MockEngineOptionsException($"unrecognized arguments: {arg}");

            var list = new List<string>();
            if (inline is not null) list.Add(inline);
            else
            {
                // argparse: nargs='+' takes every following word up to the next flag; others take one.
                while (i + 1 < args.Count && !IsFlag(args[i + 1]))
                {
                    list.Add(args[++i]);
                    if (!MultiValued.Contains(flag)) break;
                }
            }
            if (list.Count == 0)
                throw new MockEngineOptionsException(MultiValued.Contains(flag)
                    ? $"argument {flag}: expected at least one argument"
                    : $"argument {flag}: expected one argument");
            values[flag] = list; // argparse: the last occurrence wins.
        }

        string? One(string flag) => values.TryGetValue(flag, out var v) ? v[0] : null;

        var model = One("--model") ?? positionalModel ?? DefaultModel;
        var enableLora = switches.Contains("--enable-lora");
        var maxLoras = Int("--max-loras", One("--max-loras")) ?? 1;
        var maxCpuLoras = Int("--max-cpu-loras", One("--max-cpu-loras"));
        var maxLoraRank = Int("--max-lora-rank", One("--max-lora-rank")) ?? 16;
        if (!AllowedLoraRanks.Contains(maxLoraRank))
            throw new MockEngineOptionsException(
                $"argument --max-lora-rank: invalid choice: {maxLoraRank} (choose from {string.Join(", ", AllowedLoraRanks)})");
        if (maxLoras < 1) throw new MockEngineOptionsException($"max_loras ({maxLoras}) must be >= 1.");
        if (maxCpuLoras is { } cpu && cpu < maxLoras)
            throw new MockEngineOptionsException($"max_cpu_loras ({cpu}) must be >= max_loras ({maxLoras})");

        var port = Int("--port", One("--port")) ?? 8000;
        if (port is < 0 or > 65535) throw new MockEngineOptionsException($"argument --port: {port} is not a valid TCP port (0..65535)");
        var maxNumSeqs = Int("--max-num-seqs", One("--max-num-seqs")) ?? 256;
        if (maxNumSeqs < 1) throw new MockEngineOptionsException($"argument --max-num-seqs: must be >= 1, got {maxNumSeqs}");
        var maxModelLen = Int("--max-model-len", One("--max-model-len"));
        if (maxModelLen is < 1) throw new MockEngineOptionsException($"argument --max-model-len: must be >= 1, got {maxModelLen}");
        var batched = Int("--max-num-batched-tokens", One("--max-num-batched-tokens"));
        var effectiveLen = maxModelLen ?? MockEngineOptions.DefaultMaxModelLen(model, One("--mock-backend") == "onnx");
        if (batched is { } b && b < maxNumSeqs)
            throw new MockEngineOptionsException(
                $"max_num_batched_tokens ({b}) must be greater than or equal to max_num_seqs ({maxNumSeqs}).");
        var blockSize = Int("--block-size", One("--block-size")) ?? 16;
        if (blockSize is not (1 or 8 or 16 or 32 or 64 or 128))
            throw new MockEngineOptionsException($"argument --block-size: invalid choice: {blockSize} (choose from 1, 8, 16, 32, 64, 128)");
        var gpuUtil = Double("--gpu-memory-utilization", One("--gpu-memory-utilization")) ?? 0.9;
        if (gpuUtil is <= 0 or > 1)
            throw new MockEngineOptionsException($"GPU memory utilization must be within (0, 1]. Got {gpuUtil.ToString(CultureInfo.InvariantCulture)}.");

        var loraModules = values.TryGetValue("--lora-modules", out var lm) ? lm.Select(ParseLoraModule).OfType<LoraModuleSpec>().ToArray() : [];
        if (loraModules.Length > 0 && !enableLora)
            throw new MockEngineOptionsException("--lora-modules needs --enable-lora: LoRA is not enabled. Use --enable-lora to enable LoRA.");
        var servedNames = values.TryGetValue("--served-model-name", out var sn) ? sn.ToArray() : [];

        var apiKey = One("--api-key");
        if (string.IsNullOrEmpty(apiKey)) apiKey = environment(ApiKeyVariable);
        if (string.IsNullOrEmpty(apiKey)) apiKey = null;

        // The profile follows the model unless told otherwise: test/tiny gets the tiny (fast) calibration.
        var profile = One("--mock-profile")
            ?? (model.Equals("test/tiny", StringComparison.OrdinalIgnoreCase) ? PerformanceProfile.TinyName : PerformanceProfile.DefaultName);
        if (!PerformanceProfile.Names.Contains(profile))
            throw new MockEngineOptionsException($"argument --mock-profile: invalid choice: '{profile}' (choose from {string.Join(", ", PerformanceProfile.Names)})");
        var backend = One("--mock-backend") ?? "performance";
        if (backend is not ("performance" or "onnx"))
            throw new MockEngineOptionsException($"argument --mock-backend: invalid choice: '{backend}' (choose from performance, onnx)");
        if (backend == "onnx" && switches.Contains("--mock-zero-latency"))
            throw new MockEngineOptionsException("argument --mock-backend: onnx computes every token, so it cannot be combined with --mock-zero-latency");
        var timeScale = Double("--mock-time-scale", One("--mock-time-scale")) ?? 1.0;
        if (timeScale <= 0 || double.IsInfinity(timeScale))
            throw new MockEngineOptionsException("argument --mock-time-scale: must be a finite number > 0 (model seconds per wall-clock second)");
        var loadStatus = Int("--mock-load-error-status", One("--mock-load-error-status")) ?? 400;
        if (loadStatus is not (400 or 500))
            throw new MockEngineOptionsException($"argument --mock-load-error-status: invalid choice: {loadStatus} (choose from 400, 500)");
        var failRate = Rate("--mock-fail-rate", One("--mock-fail-rate")) ?? 0;
        var spikeRate = Rate("--mock-spike-rate", One("--mock-spike-rate")) ?? 0;
        var jitter = Double("--mock-step-jitter", One("--mock-step-jitter")) ?? 0;
        if (jitter is < 0 or > 0.5) throw new MockEngineOptionsException($"argument --mock-step-jitter: must be within [0, 0.5], got {jitter.ToString(CultureInfo.InvariantCulture)}");
        var spikeMs = Double("--mock-spike-ms", One("--mock-spike-ms")) ?? 1000;
        if (spikeMs < 0) throw new MockEngineOptionsException("argument --mock-spike-ms: must be >= 0");
        var crashAfter = Int("--mock-crash-after", One("--mock-crash-after"));
        if (crashAfter is < 1) throw new MockEngineOptionsException("argument --mock-crash-after: must be >= 1");
        var kvBlocks = Int("--mock-kv-blocks", One("--mock-kv-blocks"));
        if (kvBlocks is < 1) throw new MockEngineOptionsException("argument --mock-kv-blocks: must be >= 1");
        if (kvBlocks is { } kb && (long)kb * blockSize < effectiveLen && maxModelLen is not null)
            throw new MockEngineOptionsException(
                $"The model's max seq len ({effectiveLen}) is larger than the maximum number of tokens that can be stored in KV cache ({(long)kb * blockSize}). Try increasing `gpu_memory_utilization` or decreasing `max_model_len` when initializing the engine.");

        var host = One("--host") ?? "0.0.0.0";
        if (host is not ("" or "localhost" or "::") && !System.Net.IPAddress.TryParse(host, out _))
            throw new MockEngineOptionsException($"argument --host: '{host}' is not an IP address or 'localhost'");

        return new MockEngineOptions
        {
            Model = model,
            ServedModelNames = servedNames,
            Host = host,
            Port = port,
            EnableLora = enableLora,
            MaxLoras = maxLoras,
            MaxCpuLoras = maxCpuLoras,
            MaxLoraRank = maxLoraRank,
            LoraModules = loraModules,
            ApiKey = apiKey,
            MaxNumSeqs = maxNumSeqs,
            MaxModelLen = maxModelLen,
            MaxNumBatchedTokens = batched,
            BlockSize = blockSize,
            GpuMemoryUtilization = gpuUtil,
            AllowRuntimeLoraUpdating = IsTrue(environment(RuntimeLoraUpdatingVariable)),
            EnableSleepMode = switches.Contains("--enable-sleep-mode"),
            ServerDevMode = IsTrue(environment(ServerDevModeVariable)),
            Profile = profile,
            OnnxBackend = backend == "onnx",
            TimeScale = timeScale,
            ZeroLatency = switches.Contains("--mock-zero-latency"),
            Seed = Int("--mock-seed", One("--mock-seed")) ?? 0,
            StepJitter = jitter,
            KvBlocks = kvBlocks,
            LoadFailureStatus = loadStatus,
            UnloadKeepsSlot = switches.Contains("--mock-unload-keeps-slot"),
            FailRate = failRate,
            SpikeRate = spikeRate,
            SpikeMilliseconds = spikeMs,
            CrashAfterRequests = crashAfter,
            ExposeAdapterLoadedMetric = switches.Contains("--mock-expose-loaded-metric"),
        };
    }

    /// <summary>vLLM reads the variable as "1" or "true", trimmed, case-insensitive.</summary>
    public static bool IsTrue(string? value) =>
        value is not null && (value.Trim() == "1" || value.Trim().Equals("true", StringComparison.OrdinalIgnoreCase));

    private static bool IsFlag(string s) => s.StartsWith("--", StringComparison.Ordinal) && s.Length > 2;

    private static int? Int(string flag, string? text)
    {
        if (text is null) return null;
        return int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var v)
            ? v : throw new MockEngineOptionsException($"argument {flag}: invalid int value: '{text}'");
    }

    private static double? Double(string flag, string? text)
    {
        if (text is null) return null;
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var v) && double.IsFinite(v)
            ? v : throw new MockEngineOptionsException($"argument {flag}: invalid float value: '{text}'");
    }

    private static double? Rate(string flag, string? text)
    {
        var v = Double(flag, text);
        if (v is < 0 or > 1) throw new MockEngineOptionsException($"argument {flag}: must be within [0, 1], got {text}");
        return v;
    }

    /// <summary>vLLM's LoRAParserAction: <c>name=path</c> when it has '=' and no ',', else a JSON object.</summary>
    internal static LoraModuleSpec? ParseLoraModule(string item)
    {
        if (string.IsNullOrEmpty(item)) return null;
        if (item.Contains('=') && !item.Contains(','))
        {
            var eq = item.IndexOf('=', StringComparison.Ordinal);
            var name = item[..eq];
            var path = item[(eq + 1)..];
            if (name.Length == 0 || path.Length == 0)
                throw new MockEngineOptionsException($"Invalid fields for --lora-modules: {item} - both name and path are required");
            return new LoraModuleSpec(name, path, null);
        }
        JsonDocument doc;
        try { doc = JsonDocument.Parse(item); }
        catch (JsonException) { throw new MockEngineOptionsException($"Invalid JSON format for --lora-modules: {item}"); }
        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                throw new MockEngineOptionsException($"Invalid JSON format for --lora-modules: {item}");
            string? name = null, path = null, baseModel = null;
            foreach (var p in root.EnumerateObject())
            {
                switch (p.Name)
                {
                    case "name" when p.Value.ValueKind == JsonValueKind.String: name = p.Value.GetString(); break;
                    case "path" when p.Value.ValueKind == JsonValueKind.String: path = p.Value.GetString(); break;
                    case "base_model_name" when p.Value.ValueKind is JsonValueKind.String or JsonValueKind.Null: baseModel = p.Value.ValueKind == JsonValueKind.Null ? null : p.Value.GetString(); break;
                    default:
                        throw new MockEngineOptionsException($"Invalid fields for --lora-modules: {item} - unexpected field or type '{p.Name}'");
                }
            }
            if (string.IsNullOrEmpty(name) || string.IsNullOrEmpty(path))
                throw new MockEngineOptionsException($"Invalid fields for --lora-modules: {item} - missing required argument: {(string.IsNullOrEmpty(name) ? "'name'" : "'path'")}");
            return new LoraModuleSpec(name, path, baseModel);
        }
    }
}

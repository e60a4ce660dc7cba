using System.Globalization;
using HybridServing.Hosting;

namespace HybridServing.AppHost;

/// <summary>
/// The AppHost's command line. Every value has a default that runs the whole stack locally; what is
/// not ours (Aspire's own <c>--operation</c>, <c>--step</c>, … and <c>--Section:Key=value</c>
/// configuration) is handed to Aspire.
/// </summary>
internal sealed record AppHostOptions
{
    public string? ManifestsPath { get; init; }
    public IReadOnlyList<string> AdapterRoots { get; init; } = [];
    public string Host { get; init; } = "127.0.0.1";
    /// <summary><c>--port-base</c>: every port is this plus its fixed offset (<see cref="PortOffsets"/>).</summary>
    public int PortBase { get; init; } = DefaultPortBase;
    public int GatewayPort { get; init; } = 8080;
    public int ControlPlanePort { get; init; } = 8081;
    public int ControlPlaneGrpcPort { get; init; } = 8082;
    public int Engines { get; init; } = 3;
    public int EnginePortBase { get; init; } = 8000;
    public int SidecarPortBase { get; init; } = 8010;
    public int AutoscalerPort { get; init; } = 8083;
    /// <summary>The dashboard's port when <c>--port-base</c> moves it (OTLP/gRPC +1, OTLP/HTTP +2); null: the launch profile's.</summary>
    public int? DashboardPort { get; init; }
    /// <summary>Engines the Autoscaler keeps awake at the least; null: no Autoscaler, every engine stays awake.</summary>
    public int? AutoscalerMinEngines { get; init; } = 1;
    public string BaseModel { get; init; } = EnginePoolOptions.DefaultBaseModel;
    public int MaxLoras { get; init; } = 4;
    public int MaxCpuLoras { get; init; } = 8;
    /// <summary><c>--mock-backend onnx</c>: engines compute tokens with the ONNX backend; sample adapters get its shapes.</summary>
    public bool OnnxBackend { get; init; }
    public string? StateDirectory { get; init; }
    public IReadOnlyList<string> EngineArgs { get; init; } = [];
    public bool Help { get; init; }
    /// <summary>Set by <c>publish</c>: write Kubernetes manifests instead of running.</summary>
    public PublishOptions? Publish { get; init; }
    /// <summary>Arguments for Aspire's <c>DistributedApplication.CreateBuilder</c>.</summary>
    public IReadOnlyList<string> AspireArgs { get; init; } = [];

    public const int DefaultPortBase = 8000;

    /// <summary>Each port's offset from <c>--port-base</c>: the one table the help text, the README and the port check follow.</summary>
    public static class PortOffsets
    {
        public const int Engine = 0;          // engine i: base + i (i < 10)
        public const int SidecarHttp = 10;    // sidecar i HTTP: base + 10 + i
        public const int SidecarGrpc = 20;    // sidecar i gRPC: base + 20 + i
        public const int Gateway = 80;
        public const int ControlPlaneHttp = 81;
        public const int ControlPlaneGrpc = 82;
        public const int Autoscaler = 83;
        /// <summary>The last offset of a component port; a test reserves a block this long.</summary>
        public const int Last = Autoscaler;
        /// <summary>The Aspire dashboard (then OTLP/gRPC +1, OTLP/HTTP +2), moved only when --port-base is given: 8000 + 10888 = 18888.</summary>
        public const int Dashboard = 10888;
        /// <summary>The highest offset: a base must leave room for it below 65536.</summary>
        public const int Highest = Dashboard + 2;
    }

    public const string Usage = """
        Usage: dotnet run --project AppHost [-- options]
               dotnet run --project AppHost -- publish [publish options]   (see publish --help)

        Runs the local stack on .NET Aspire: MockEngines, one EngineSidecar per engine, the ControlPlane
        (local home) and the Gateway, with the Aspire dashboard (traces, metrics, logs) at the URL printed.

          --manifests DIR            LoraAdapter YAML folder (default: AppHost/samples, with generated sample adapters)
          --adapter-root DIR         a directory sidecars may load local adapters from (repeatable;
                                     default: the manifests folder)
          --port-base N              every port is N plus a fixed offset (default 8000; see Ports below)
          --engines N                number of MockEngines (default 3, at most 9)
          --autoscaler-min-engines N engines the Autoscaler keeps awake when idle; the others sleep (default 1)
          --no-autoscaler            no Autoscaler: every engine stays awake
          --base-model NAME          base model every engine serves (default meta-llama/Llama-3.1-8B-Instruct)
          --max-loras N              engine GPU LoRA slots (default 4)
          --max-cpu-loras N          engine host-memory LoRA slots (default 8)
          --mock-backend NAME        performance (default) or onnx: engines run a tiny transformer on ONNX Runtime
                                     whose answers depend on the adapter (sample adapters are written at its shapes)
          --engine-arg ARG           an extra MockEngine argument (repeatable, e.g. --engine-arg=--mock-time-scale --engine-arg=4)
          --host ADDRESS             address every component binds to (default 127.0.0.1)
          --state-dir DIR            sidecar caches (default .hybridserving/ in the repository)
          -h, --help                 this text

        Ports (B = --port-base, default 8000; i = engine index 0..N-1):
          B+i        engine i (MockEngine, vLLM's API)             8000, 8001, 8002
          B+10+i     sidecar i HTTP (health, /status)              8010, 8011, 8012
          B+20+i     sidecar i gRPC                                8020, 8021, 8022
          B+80       Gateway (OpenAI API)                          8080
          B+81       ControlPlane HTTP (status, LoraAdapter API)   8081
          B+82       ControlPlane gRPC                             8082
          B+83       Autoscaler (/v1/status)                       8083
          18888-18890  Aspire dashboard, OTLP/gRPC, OTLP/HTTP (the launch profile's; B+10888-B+10890 when --port-base is given)
        One port alone moves with --engine-port-base N (engine i: N+i), --sidecar-port-base N (N+i, N+10+i),
        --gateway-port, --controlplane-port (its gRPC port follows at N+1), --controlplane-grpc-port,
        --autoscaler-port. Every port is checked before anything starts; one in use ends the run (exit 3)
        with one line naming it and the option that moves it.
        Aspire's own options and configuration (--Section:Key=value) pass through to Aspire.
        """;

    /// <summary>Aspire's own command-line switches, passed through with their value.</summary>
    private static readonly HashSet<string> AspireSwitches = ["--operation", "--step", "--output-path", "--clear-cache", "--publisher", "--log-level", "--environment"];

    /// <summary>Parses the command line; a wrong value throws <see cref="AppHostOptionsException"/> naming the flag.</summary>
    public static AppHostOptions Parse(IReadOnlyList<string> args)
    {
        if (args.Count > 0 && args[0] == "publish")
        {
            var publishArgs = args.Skip(1).ToArray();
            if (publishArgs is ["--help"] or ["-h"]) return new AppHostOptions { Help = true, Publish = new PublishOptions() };
            var publish = PublishOptions.Parse([.. publishArgs]);
            return new AppHostOptions
            {
                Publish = publish,
                AspireArgs = ["--operation", "publish", "--step", "publish", "--output-path", OutputPath(publish.OutputDirectory), "--clear-cache", "true"],
            };
        }

        var o = new AppHostOptions();
        var roots = new List<string>();
        var engineArgs = new List<string>();
        var aspire = new List<string>();
        var grpcPortSet = false;
        var set = new HashSet<string>();
        for (var i = 0; i < args.Count; i++)
        {
            var (flag, inline) = Split(args[i]);
            string Value()
            {
                if (inline is not null) return inline;
                return i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)
                    ? args[++i] : throw new AppHostOptionsException(flag, "needs a value");
            }
            int Port() => Value() is var v && int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p is > 0 and < 65536 ? p : throw new AppHostOptionsException(flag, $"'{v}' is not a TCP port (1-65535)");
            int Positive(int max) => Value() is var v && int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= 1 && n <= max ? n : throw new AppHostOptionsException(flag, $"'{v}' is not a whole number from 1 to {max}");

            if (AspireSwitches.Contains(flag) || flag.Contains(':', StringComparison.Ordinal))
            {
                aspire.Add(args[i]);
                if (inline is null && i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)) aspire.Add(args[++i]);
                continue;
            }
            if (flag is "--port-base" or "--gateway-port" or "--controlplane-port" or "--controlplane-grpc-port" or "--engine-port-base" or "--sidecar-port-base" or "--autoscaler-port")
                set.Add(flag);
            o = flag switch
            {
                "--port-base" => o with { PortBase = Value() is var b && int.TryParse(b, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 && n + PortOffsets.Highest < 65536 ? n : throw new AppHostOptionsException(flag, $"'{b}' is not a port base (1-{65535 - PortOffsets.Highest}: the highest port, the dashboard's OTLP/HTTP, is the base + {PortOffsets.Highest})") },
                "--manifests" => o with { ManifestsPath = Value() },
                "--adapter-root" => o with { AdapterRoots = [.. roots.Append(Value())] },
                "--gateway-port" => o with { GatewayPort = Port() },
                "--controlplane-port" => o with { ControlPlanePort = Port() },
                "--controlplane-grpc-port" => SetGrpc(o, Port(), ref grpcPortSet),
                "--engines" => o with { Engines = Positive(9) },
                "--engine-port-base" => o with { EnginePortBase = Port() },
                "--sidecar-port-base" => o with { SidecarPortBase = Port() },
                "--base-model" => o with { BaseModel = Value() },
                "--autoscaler-min-engines" => o with { AutoscalerMinEngines = Positive(9) },
                "--no-autoscaler" => o with { AutoscalerMinEngines = null },
                "--autoscaler-port" => o with { AutoscalerPort = Port() },
                "--max-loras" => o with { MaxLoras = Positive(512) },
                "--max-cpu-loras" => o with { MaxCpuLoras = Positive(4096) },
                "--mock-backend" => Value() switch
                {
                    "performance" => o with { OnnxBackend = false },
                    "onnx" => o with { OnnxBackend = true },
                    var v => throw new AppHostOptionsException(flag, $"'{v}' is not a backend (performance or onnx)"),
                },
                "--engine-arg" => o with { EngineArgs = [.. engineArgs.Append(Value())] },
                "--host" => o with { Host = Value() },
                "--state-dir" => o with { StateDirectory = Value() },
                "-h" or "--help" => o with { Help = true },
                _ => throw new AppHostOptionsException(flag, "is not a known option (see --help)"),
            };
            roots = [.. o.AdapterRoots];
            engineArgs = [.. o.EngineArgs];
        }
        // A port not given on its own is the base plus its offset; the ControlPlane's gRPC port follows its HTTP port.
        var pb = o.PortBase;
        if (!set.Contains("--engine-port-base")) o = o with { EnginePortBase = pb + PortOffsets.Engine };
        if (!set.Contains("--sidecar-port-base")) o = o with { SidecarPortBase = pb + PortOffsets.SidecarHttp };
        if (!set.Contains("--gateway-port")) o = o with { GatewayPort = pb + PortOffsets.Gateway };
        if (!set.Contains("--controlplane-port")) o = o with { ControlPlanePort = pb + PortOffsets.ControlPlaneHttp };
        if (!set.Contains("--autoscaler-port")) o = o with { AutoscalerPort = pb + PortOffsets.Autoscaler };
        if (!grpcPortSet) o = o with { ControlPlaneGrpcPort = o.ControlPlanePort + 1 };
        // The dashboard's ports are the launch profile's (18888-18890) unless --port-base moves the stack: then they
        // move too, so a second stack on another base starts beside the first.
        if (set.Contains("--port-base")) o = o with { DashboardPort = pb + PortOffsets.Dashboard };
        if (o.AutoscalerMinEngines > o.Engines)
            throw new AppHostOptionsException("--autoscaler-min-engines", $"{o.AutoscalerMinEngines} is more than the {o.Engines} engines (--engines)");
        if (o.MaxCpuLoras < o.MaxLoras)
            throw new AppHostOptionsException("--max-cpu-loras", $"max_cpu_loras ({o.MaxCpuLoras}) must be >= max_loras ({o.MaxLoras})");
        if (o.DashboardPort is { } d)
            aspire.AddRange([
                $"--ASPNETCORE_URLS=http://{o.Host}:{d}", $"--ASPIRE_DASHBOARD_OTLP_ENDPOINT_URL=http://{o.Host}:{d + 1}",
                $"--ASPIRE_DASHBOARD_OTLP_HTTP_ENDPOINT_URL=http://{o.Host}:{d + 2}"]);
        return o with { AspireArgs = aspire };

        // 'dotnet run --project AppHost' starts the AppHost in its project folder: a relative --output is
        // taken from the shell's folder, and the default is the repository's k8s/.
        static string OutputPath(string? output) => output is null
            ? Path.Combine(RepositoryRoot(), "k8s")
            : Path.GetFullPath(output, Environment.GetEnvironmentVariable("PWD") is { Length: > 0 } pwd ? pwd : Environment.CurrentDirectory);

        static string RepositoryRoot()
        {
            for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            {
                if (File.Exists(Path.Combine(dir.FullName, "HybridServing.sln"))) return dir.FullName;
            }
            throw new AppHostOptionsException("--output", $"no HybridServing.sln above {AppContext.BaseDirectory} to find k8s/ in; give --output DIR");
        }

        static (string Flag, string? Inline) Split(string arg)
        {
            var eq = arg.IndexOf('=', StringComparison.Ordinal);
            return arg.StartsWith("--", StringComparison.Ordinal) && eq > 2 ? (arg[..eq], arg[(eq + 1)..]) : (arg, null);
        }

        static AppHostOptions SetGrpc(AppHostOptions o, int port, ref bool set)
        {
            set = true;
            return o with { ControlPlaneGrpcPort = port };
        }
    }
}

internal sealed class AppHostOptionsException(string flag, string problem) : Exception($"{flag}: {problem}")
{
    public string Flag { get; } = flag;
}

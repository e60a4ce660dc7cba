namespace HybridServing.AppHost;

/// <summary>The AppHost's command line. Every value has a default that runs the whole stack locally.</summary>
internal sealed record AppHostOptions
{
    public const string DefaultBaseModel = "meta-llama/Llama-3.1-8B-Instruct";

    public string? ManifestsPath { get; init; }
    public IReadOnlyList<string> AdapterRoots { get; init; } = [];
    public string Host { get; init; } = "127.0.0.1";
    public int GatewayPort { get; init; } = 8080;
    public int ControlPlanePort { get; init; } = 8081;
    public int ControlPlaneGrpcPort { get; init; } = 8082;
    public int Engines { get; init; } = 3;
    public int EnginePortBase { get; init; } = 8000;
    public int SidecarHttpPortBase { get; init; } = 8010;
    public int SidecarGrpcPortBase { get; init; } = 8020;
    public string BaseModel { get; init; } = DefaultBaseModel;
    public int MaxLoras { get; init; } = 4;
    public int MaxCpuLoras { get; init; } = 8;
    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(60);
    public string? StateDirectory { get; init; }
    public bool Help { get; init; }

    public const string Usage = """
        Usage: dotnet run --project AppHost [-- options]

        Starts MockEngines, one EngineSidecar per engine, the ControlPlane (local home) and the Gateway.

          --manifests DIR            LoraAdapter YAML folder (default: AppHost/samples, with generated sample adapters)
          --adapter-root DIR         a directory sidecars may load local adapters from (repeatable;
                                     default: the manifests folder)
          --gateway-port N           Gateway HTTP port (default 8080)
          --controlplane-port N      ControlPlane HTTP port (default 8081; its gRPC port is N+1 unless --controlplane-grpc-port)
          --controlplane-grpc-port N ControlPlane gRPC port (default 8082)
          --engines N                number of MockEngines (default 3)
          --engine-port-base N       first engine port (default 8000); sidecars use --sidecar-port-base (8010) and +10 for gRPC
          --sidecar-port-base N      first sidecar HTTP port (default 8010)
          --base-model NAME          base model every engine serves (default meta-llama/Llama-3.1-8B-Instruct)
          --max-loras N              engine GPU LoRA slots (default 4)
          --max-cpu-loras N          engine host-memory LoRA slots (default 8)
          --host ADDRESS             address every component binds to (default 127.0.0.1)
          --start-timeout SECONDS    how long each component may take to become healthy (default 60)
          --state-dir DIR            sidecar caches and generated files (default .hybridserving/ in the repository)
          -h, --help                 this text
        """;

    /// <summary>Parses the command line; a wrong value throws <see cref="AppHostOptionsException"/> naming the flag.</summary>
    public static AppHostOptions Parse(IReadOnlyList<string> args)
    {
        var o = new AppHostOptions();
        var roots = new List<string>();
        var grpcPortSet = false;
        for (var i = 0; i < args.Count; i++)
        {
            var flag = args[i];
            string Value() => i + 1 < args.Count && !args[i + 1].StartsWith("--", StringComparison.Ordinal)
                ? args[++i] : throw new AppHostOptionsException(flag, "needs a value");
            int Port() => int.TryParse(Value(), out var p) && p is > 0 and < 65536 ? p : throw new AppHostOptionsException(flag, $"'{args[i]}' is not a TCP port (1-65535)");
            int Positive(int max) => int.TryParse(Value(), out var n) && n >= 1 && n <= max ? n : throw new AppHostOptionsException(flag, $"'{args[i]}' is not a whole number from 1 to {max}");

            o = flag switch
            {
                "--manifests" => o with { ManifestsPath = Value() },
                "--adapter-root" => AddRoot(o, roots, Value()),
                "--gateway-port" => o with { GatewayPort = Port() },
                "--controlplane-port" => o with { ControlPlanePort = Port() },
                "--controlplane-grpc-port" => SetGrpc(o, Port(), ref grpcPortSet),
                "--engines" => o with { Engines = Positive(9) },
                "--engine-port-base" => o with { EnginePortBase = Port() },
                "--sidecar-port-base" => o with { SidecarHttpPortBase = Port() },
                "--base-model" => o with { BaseModel = Value() },
                "--max-loras" => o with { MaxLoras = Positive(512) },
                "--max-cpu-loras" => o with { MaxCpuLoras = Positive(4096) },
                "--host" => o with { Host = Value() },
                "--start-timeout" => o with { StartTimeout = TimeSpan.FromSeconds(Positive(3600)) },
                "--state-dir" => o with { StateDirectory = Value() },
                "-h" or "--help" => o with { Help = true },
                _ => throw new AppHostOptionsException(flag, "is not a known option (see --help)"),
            };
        }
        if (!grpcPortSet) o = o with { ControlPlaneGrpcPort = o.ControlPlanePort + 1 };
        o = o with { SidecarGrpcPortBase = o.SidecarHttpPortBase + 10 };
        if (o.MaxCpuLoras < o.MaxLoras)
            throw new AppHostOptionsException("--max-cpu-loras", $"max_cpu_loras ({o.MaxCpuLoras}) must be >= max_loras ({o.MaxLoras})");
        return o;

        static AppHostOptions AddRoot(AppHostOptions o, List<string> roots, string root)
        {
            roots.Add(root);
            return o with { AdapterRoots = [.. roots] };
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

using HybridServing.AppHost.Orchestration;

namespace HybridServing.AppHost.Topology;

/// <summary>
/// The local stack: N MockEngines, one EngineSidecar per engine, the ControlPlane in its local
/// home and the Gateway, wired with .NET Aspire's environment-variable conventions
/// (<c>services__{name}__{endpoint}__{index}</c>, <c>OTEL_SERVICE_NAME</c>, <c>ASPNETCORE_URLS</c>)
/// so each service runs unchanged under a real Aspire AppHost or in Kubernetes.
/// </summary>
internal static class LocalTopology
{
    public const string GatewayName = "gateway";
    public const string ControlPlaneName = "controlplane";

    public static string EngineName(int i) => $"engine-{i}";
    public static string SidecarName(int i) => $"sidecar-{i}";

    /// <param name="manifestsPath">LoraAdapter YAML folder the ControlPlane watches.</param>
    /// <param name="adapterRoots">Directories sidecars may load local adapters from.</param>
    /// <param name="stateDirectory">Where sidecars keep their artifact caches.</param>
    /// <param name="devApiKey">The development tenant's API key the Gateway accepts.</param>
    public static IReadOnlyList<ResourceDefinition> Build(AppHostOptions o, string manifestsPath, IReadOnlyList<string> adapterRoots, string stateDirectory, string devApiKey)
    {
        var resources = new List<ResourceDefinition>();
        var http = (int port) => new Uri($"http://{o.Host}:{port}");

        var controlPlaneEnv = Common(ControlPlaneName);
        controlPlaneEnv["Kestrel__Endpoints__Http__Url"] = http(o.ControlPlanePort).ToString().TrimEnd('/');
        controlPlaneEnv["Kestrel__Endpoints__Grpc__Url"] = http(o.ControlPlaneGrpcPort).ToString().TrimEnd('/');
        controlPlaneEnv["Kestrel__Endpoints__Grpc__Protocols"] = "Http2";
        controlPlaneEnv["ControlPlane__Home"] = "Local";
        controlPlaneEnv["ControlPlane__ManifestsPath"] = manifestsPath;

        for (var i = 0; i < o.Engines; i++)
        {
            var engine = EngineName(i);
            var sidecar = SidecarName(i);
            var enginePort = o.EnginePortBase + i;
            var sidecarHttp = o.SidecarHttpPortBase + i;
            var sidecarGrpc = o.SidecarGrpcPortBase + i;
            var node = $"node-{i}";

            var engineEnv = Common(engine);
            // Runtime load/unload routes exist only with this switch, as in vLLM.
            engineEnv["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "true";
            resources.Add(new ResourceDefinition(engine, "MockEngine",
                ["--model", o.BaseModel, "--enable-lora", "--max-loras", o.MaxLoras.ToString(), "--max-cpu-loras", o.MaxCpuLoras.ToString(),
                 "--host", o.Host, "--port", enginePort.ToString()],
                engineEnv, new Uri(http(enginePort), "/health"), [new("http", http(enginePort))], []));

            var sidecarEnv = Common(sidecar);
            sidecarEnv["Kestrel__Endpoints__Http__Url"] = http(sidecarHttp).ToString().TrimEnd('/');
            sidecarEnv["Kestrel__Endpoints__Grpc__Url"] = http(sidecarGrpc).ToString().TrimEnd('/');
            sidecarEnv["Kestrel__Endpoints__Grpc__Protocols"] = "Http2";
            sidecarEnv[$"services__{engine}__http__0"] = http(enginePort).ToString();
            sidecarEnv["Sidecar__EngineUrl"] = http(enginePort).ToString();
            sidecarEnv["Sidecar__EngineKind"] = "vllm";
            sidecarEnv["Sidecar__PodName"] = engine;
            sidecarEnv["Sidecar__NodeName"] = node;
            // vLLM does not expose its host-memory capacity; the sidecar reports what the engine was started with.
            sidecarEnv["Sidecar__MaxLoras"] = o.MaxLoras.ToString();
            sidecarEnv["Sidecar__MaxCpuLoras"] = o.MaxCpuLoras.ToString();
            sidecarEnv["Sidecar__CacheDirectory"] = Path.Combine(stateDirectory, sidecar, "cache");
            for (var r = 0; r < adapterRoots.Count; r++) sidecarEnv[$"Sidecar__AllowedLocalRoots__{r}"] = adapterRoots[r];
            resources.Add(new ResourceDefinition(sidecar, "EngineSidecar", [], sidecarEnv,
                new Uri(http(sidecarHttp), "/health"), [new("http", http(sidecarHttp)), new("grpc", http(sidecarGrpc))], [engine]));

            controlPlaneEnv[$"ControlPlane__Engines__{i}__Name"] = engine;
            controlPlaneEnv[$"ControlPlane__Engines__{i}__Node"] = node;
            controlPlaneEnv[$"ControlPlane__Engines__{i}__SidecarUrl"] = http(sidecarGrpc).ToString();
            controlPlaneEnv[$"ControlPlane__Engines__{i}__Labels__pool"] = "default";
            controlPlaneEnv[$"services__{sidecar}__grpc__0"] = http(sidecarGrpc).ToString();
        }

        resources.Add(new ResourceDefinition(ControlPlaneName, "ControlPlane", [], controlPlaneEnv,
            new Uri(http(o.ControlPlanePort), "/health"),
            [new("http", http(o.ControlPlanePort)), new("grpc", http(o.ControlPlaneGrpcPort))],
            [.. Enumerable.Range(0, o.Engines).Select(SidecarName)]));

        var gatewayEnv = Common(GatewayName);
        gatewayEnv["ASPNETCORE_URLS"] = http(o.GatewayPort).ToString().TrimEnd('/');
        gatewayEnv[$"services__{ControlPlaneName}__http__0"] = http(o.ControlPlanePort).ToString();
        gatewayEnv[$"services__{ControlPlaneName}__grpc__0"] = http(o.ControlPlaneGrpcPort).ToString();
        foreach (var (k, v) in GatewayTenancy(devApiKey)) gatewayEnv[k] = v;
        resources.Add(new ResourceDefinition(GatewayName, "Gateway", [], gatewayEnv,
            new Uri(http(o.GatewayPort), "/health"), [new("http", http(o.GatewayPort))], [ControlPlaneName]));

        return resources;
    }

    /// <summary>The development tenant: one key that may use the <c>default</c> namespace.</summary>
    private static Dictionary<string, string> GatewayTenancy(string devApiKey) => new()
    {
        ["Gateway__Tenants__0__Name"] = "dev",
        ["Gateway__Tenants__0__ApiKey"] = devApiKey,
        ["Gateway__Tenants__0__Namespaces__0"] = "default",
    };

    private static Dictionary<string, string> Common(string name)
    {
        var env = new Dictionary<string, string>
        {
            ["DOTNET_ENVIRONMENT"] = "Development",
            ["ASPNETCORE_ENVIRONMENT"] = "Development",
            ["OTEL_SERVICE_NAME"] = name,
            ["OTEL_RESOURCE_ATTRIBUTES"] = $"service.instance.id={name}-{Environment.ProcessId}",
            ["Logging__Console__FormatterName"] = "simple",
            // Request-level framework logs (every health probe and metrics scrape) drown the components' own.
            ["Logging__LogLevel__Microsoft.AspNetCore"] = "Warning",
            ["Logging__LogLevel__System.Net.Http.HttpClient"] = "Warning",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
            ["Logging__Console__FormatterOptions__TimestampFormat"] = "HH:mm:ss ",
            // Children stop themselves if the AppHost dies without stopping them (no orphans).
            ["HYBRIDSERVING_APPHOST_PID"] = Environment.ProcessId.ToString(),
        };
        var otlp = Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (!string.IsNullOrEmpty(otlp)) env["OTEL_EXPORTER_OTLP_ENDPOINT"] = otlp;
        return env;
    }
}

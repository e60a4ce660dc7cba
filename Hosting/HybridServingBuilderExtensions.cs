using System.Globalization;
using Aspire.Hosting.ApplicationModel;
using HybridServing.Hosting;

namespace Aspire.Hosting;

/// <summary>
/// HybridServing's Aspire hosting integration: add the ControlPlane, an engine pool and the Gateway
/// to any Aspire AppHost with a few calls, wired with endpoint references, health checks and
/// <c>WaitFor</c>, passing the configuration keys the services read.
/// </summary>
/// <example>
/// <code>
/// var pool = builder.AddEnginePool&lt;Projects.MockEngine, Projects.EngineSidecar&gt;("engine", new() { Engines = 3 });
/// var controlPlane = builder.AddHybridServingControlPlane&lt;Projects.ControlPlane&gt;("controlplane")
///     .WithLoraAdapterManifests("./adapters")
///     .WithEnginePool(pool);
/// builder.AddHybridServingGateway&lt;Projects.Gateway&gt;("gateway")
///     .WithControlPlane(controlPlane)
///     .WithTenant("dev", builder.AddParameter("dev-api-key", secret: true), "default");
/// </code>
/// </example>
public static class HybridServingBuilderExtensions
{
    public const string HttpEndpoint = "http";
    public const string GrpcEndpoint = "grpc";
    public const string HealthPath = "/health";

    /// <summary>Adds the ControlPlane (local home: LoraAdapter YAML files in a watched folder).</summary>
    public static IResourceBuilder<ProjectResource> AddHybridServingControlPlane<TProject>(
        this IDistributedApplicationBuilder builder, string name, int httpPort = 8081, int? grpcPort = null, string host = "127.0.0.1")
        where TProject : IProjectMetadata, new() =>
        builder.AddProject<TProject>(name, launchProfileName: null)
            .AsComponent(HybridServingRole.ControlPlane)
            .WithHttpAndGrpc(host, httpPort, grpcPort ?? httpPort + 1)
            .WithEnvironment("ControlPlane__Home", "Local")
            .WithUrls(ctx =>
            {
                if (ctx.GetEndpoint(HttpEndpoint) is not { } http) return;
                ctx.Urls.Add(new() { Url = $"{http.Url}/v1/status", DisplayText = "Status (engines, desired sets, shortfalls)", Endpoint = http });
                ctx.Urls.Add(new() { Url = $"{http.Url}/apis/hybridserving.io/v1alpha1/loraadapters", DisplayText = "LoraAdapters", Endpoint = http });
                ctx.Urls.Add(new() { Url = $"{http.Url}/v1/routes", DisplayText = "Routing table", Endpoint = http });
            });

    /// <summary>The folder of LoraAdapter YAML files the ControlPlane's local home watches.</summary>
    public static IResourceBuilder<ProjectResource> WithLoraAdapterManifests(this IResourceBuilder<ProjectResource> controlPlane, string folder) =>
        controlPlane.WithEnvironment("ControlPlane__ManifestsPath", Path.GetFullPath(folder));

    /// <summary>
    /// Adds <paramref name="options"/>.Engines engines and one EngineSidecar per engine. Each sidecar
    /// waits for its engine; the engines are MockEngines (or any project taking vLLM's flags).
    /// </summary>
    public static EnginePool AddEnginePool<TEngine, TSidecar>(this IDistributedApplicationBuilder builder, string name, EnginePoolOptions options)
        where TEngine : IProjectMetadata, new()
        where TSidecar : IProjectMetadata, new()
    {
        if (options.Engines < 1) throw new ArgumentOutOfRangeException(nameof(options), options.Engines, "An engine pool needs at least one engine.");
        if (options.MaxCpuLoras < options.MaxLoras)
            throw new ArgumentException($"MaxCpuLoras ({options.MaxCpuLoras}) must be >= MaxLoras ({options.MaxLoras}).", nameof(options));

        var engines = new List<IResourceBuilder<ProjectResource>>();
        var sidecars = new List<IResourceBuilder<ProjectResource>>();
        var pool = new EnginePool(name, options, engines, sidecars);
        var stateDirectory = Path.GetFullPath(options.StateDirectory);
        for (var i = 0; i < options.Engines; i++)
        {
            var enginePort = options.EnginePortBase + i;
            var engine = builder.AddProject<TEngine>($"{name}-{i}", launchProfileName: null)
                .AsComponent(HybridServingRole.Engine)
                .WithAnnotation(new EnginePoolMemberAnnotation(pool, i))
                .WithHttpEndpoint(port: enginePort, name: HttpEndpoint, isProxied: false)
                .WithEndpointsInEnvironment(_ => false)
                .WithArgs(
                    ["--model", options.BaseModel, "--enable-lora",
                     "--max-loras", Invariant(options.MaxLoras), "--max-cpu-loras", Invariant(options.MaxCpuLoras),
                     "--host", options.Host, "--port", Invariant(enginePort),
                     .. options.SleepMode ? ["--enable-sleep-mode"] : Array.Empty<string>(), .. options.ExtraEngineArgs])
                // Runtime load/unload routes exist only with this switch, as in vLLM.
                .WithEnvironment("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "true")
                // vLLM serves /sleep, /wake_up and /is_sleeping only in dev mode.
                .WithEnvironment("VLLM_SERVER_DEV_MODE", options.SleepMode ? "1" : "0")
                .WithHttpHealthCheck(HealthPath, endpointName: HttpEndpoint)
                .WithUrls(ctx =>
                {
                    if (ctx.GetEndpoint(HttpEndpoint) is not { } http) return;
                    ctx.Urls.Add(new() { Url = $"{http.Url}/v1/models", DisplayText = "Loaded adapters (/v1/models)", Endpoint = http });
                    ctx.Urls.Add(new() { Url = $"{http.Url}/metrics", DisplayText = "vLLM metrics", Endpoint = http });
                });

            var sidecar = builder.AddProject<TSidecar>($"{name}-{i}-sidecar", launchProfileName: null)
                .AsComponent(HybridServingRole.Sidecar)
                .WithAnnotation(new EnginePoolMemberAnnotation(pool, i))
                .WithHttpAndGrpc(options.Host, options.SidecarPortBase + i, options.SidecarPortBase + 10 + i)
                .WithEnvironment("Sidecar__EngineUrl", engine.GetEndpoint(HttpEndpoint))
                .WithEnvironment("Sidecar__EngineKind", "vllm")
                .WithEnvironment("Sidecar__PodName", engine.Resource.Name)
                .WithEnvironment("Sidecar__NodeName", pool.NodeName(i))
                // vLLM does not expose its LoRA capacity; the sidecar reports what the engine was started with.
                .WithEnvironment("Sidecar__MaxLoras", Invariant(options.MaxLoras))
                .WithEnvironment("Sidecar__MaxCpuLoras", Invariant(options.MaxCpuLoras))
                .WithEnvironment("Sidecar__CacheDirectory", Path.Combine(stateDirectory, $"{name}-{i}-sidecar", "cache"))
                .WithEnvironment(ctx =>
                {
                    for (var r = 0; r < options.AllowedLocalRoots.Count; r++)
                        ctx.EnvironmentVariables[$"Sidecar__AllowedLocalRoots__{r}"] = Path.GetFullPath(options.AllowedLocalRoots[r]);
                })
                .WithParentRelationship(engine)
                .WaitFor(engine);
            engines.Add(engine);
            sidecars.Add(sidecar);
        }
        return pool;
    }

    /// <summary>
    /// Registers the pool's engines with the ControlPlane (local home) and waits for their sidecars. The
    /// ControlPlane confines local sources to the pool's <see cref="EnginePoolOptions.AllowedLocalRoots"/>,
    /// the same folders the sidecars accept, so a repository outside them is refused in status at once.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithEnginePool(this IResourceBuilder<ProjectResource> controlPlane, EnginePool pool)
    {
        var first = controlPlane.Resource.Annotations.OfType<EnginePoolMemberAnnotation>().Count();
        if (first == 0)
        {
            controlPlane.WithEnvironment(ctx =>
            {
                for (var r = 0; r < pool.Options.AllowedLocalRoots.Count; r++)
                    ctx.EnvironmentVariables[$"ControlPlane__AllowedLocalRoots__{r}"] = Path.GetFullPath(pool.Options.AllowedLocalRoots[r]);
            });
        }
        for (var i = 0; i < pool.Sidecars.Count; i++)
        {
            var key = $"ControlPlane__Engines__{first + i}__";
            var sidecar = pool.Sidecars[i];
            controlPlane
                .WithAnnotation(new EnginePoolMemberAnnotation(pool, i))
                .WithEnvironment(key + "Name", pool.Engines[i].Resource.Name)
                .WithEnvironment(key + "Node", pool.NodeName(i))
                .WithEnvironment(key + "SidecarUrl", sidecar.GetEndpoint(GrpcEndpoint))
                .WithEnvironment(key + "Labels__pool", pool.Options.PoolLabel)
                .WaitFor(sidecar);
        }
        return controlPlane;
    }

    /// <summary>Adds the OpenAI-compatible Gateway on <paramref name="port"/>.</summary>
    public static IResourceBuilder<ProjectResource> AddHybridServingGateway<TProject>(
        this IDistributedApplicationBuilder builder, string name, int port = 8080, string host = "127.0.0.1")
        where TProject : IProjectMetadata, new() =>
        builder.AddProject<TProject>(name, launchProfileName: null)
            .AsComponent(HybridServingRole.Gateway)
            .WithHttpEndpoint(port: port, name: HttpEndpoint, isProxied: false)
            .WithEndpointsInEnvironment(_ => false)
            .WithEnvironment("ASPNETCORE_URLS", $"http://{host}:{Invariant(port)}")
            .WithHttpHealthCheck(HealthPath, endpointName: HttpEndpoint)
            .WithUrlForEndpoint(HttpEndpoint, url =>
            {
                url.Url += "/v1";
                url.DisplayText = "OpenAI base URL";
            });

    /// <summary>The ControlPlane whose routing stream the gateway follows and whom it asks for cold-start loads.</summary>
    public static IResourceBuilder<ProjectResource> WithControlPlane(this IResourceBuilder<ProjectResource> gateway, IResourceBuilder<ProjectResource> controlPlane) =>
        gateway
            .WithAnnotation(new ControlPlaneReferenceAnnotation(controlPlane.Resource))
            .WithReference(controlPlane.GetEndpoint(HttpEndpoint))
            .WithReference(controlPlane.GetEndpoint(GrpcEndpoint))
            .WaitFor(controlPlane);

    /// <summary>A tenant whose API key may use the adapters of <paramref name="namespaces"/>.</summary>
    public static IResourceBuilder<ProjectResource> WithTenant(this IResourceBuilder<ProjectResource> gateway, string tenant, IResourceBuilder<ParameterResource> apiKey, params string[] namespaces)
    {
        var index = gateway.Resource.Annotations.OfType<TenantAnnotation>().Count();
        var key = $"Gateway__Tenants__{index}__";
        gateway.WithAnnotation(new TenantAnnotation(tenant))
            .WithEnvironment(key + "Name", tenant)
            .WithEnvironment(key + "ApiKey", apiKey);
        for (var n = 0; n < namespaces.Length; n++) gateway.WithEnvironment($"{key}Namespaces__{n}", namespaces[n]);
        return gateway;
    }

    /// <summary>
    /// Adds the Autoscaler on <paramref name="port"/>, reading the ControlPlane's status and the gateway's
    /// held requests; pools are added with <see cref="WithSleepingPool"/>.
    /// </summary>
    public static IResourceBuilder<ProjectResource> AddHybridServingAutoscaler<TProject>(
        this IDistributedApplicationBuilder builder, string name, IResourceBuilder<ProjectResource> controlPlane, IResourceBuilder<ProjectResource> gateway,
        int port = 8083, string host = "127.0.0.1")
        where TProject : IProjectMetadata, new() =>
        builder.AddProject<TProject>(name, launchProfileName: null)
            .AsComponent(HybridServingRole.Autoscaler)
            .WithAnnotation(new ControlPlaneReferenceAnnotation(controlPlane.Resource))
            .WithHttpEndpoint(port: port, name: HttpEndpoint, isProxied: false)
            .WithEndpointsInEnvironment(_ => false)
            .WithEnvironment("ASPNETCORE_URLS", $"http://{host}:{Invariant(port)}")
            .WithEnvironment("Autoscaler__ControlPlaneUrl", controlPlane.GetEndpoint(HttpEndpoint))
            .WithEnvironment("Autoscaler__GatewayUrls__0", gateway.GetEndpoint(HttpEndpoint))
            .WithHttpHealthCheck(HealthPath, endpointName: HttpEndpoint)
            .WithUrls(ctx =>
            {
                if (ctx.GetEndpoint(HttpEndpoint) is not { } http) return;
                ctx.Urls.Add(new() { Url = $"{http.Url}/v1/status", DisplayText = "Decisions (/v1/status)", Endpoint = http });
            })
            .WaitFor(gateway);

    /// <summary>
    /// The Autoscaler keeps between <paramref name="minEngines"/> and all of the pool's engines awake,
    /// putting the rest into vLLM's sleep mode (the pool needs <see cref="EnginePoolOptions.SleepMode"/>).
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithSleepingPool(this IResourceBuilder<ProjectResource> autoscaler, EnginePool pool, int minEngines = 1)
    {
        if (!pool.Options.SleepMode) throw new ArgumentException($"Engine pool '{pool.Name}' does not run with SleepMode; the Autoscaler cannot sleep its engines.", nameof(pool));
        var key = $"Autoscaler__Pools__{pool.Name}__";
        autoscaler.WithAnnotation(new EnginePoolMemberAnnotation(pool, 0))
            .WithEnvironment(key + "Actuator", "Sleep")
            .WithEnvironment(key + "MinEngines", Invariant(minEngines))
            .WithEnvironment(key + "MaxEngines", Invariant(pool.Engines.Count));
        for (var i = 0; i < pool.Engines.Count; i++)
            autoscaler.WithEnvironment($"{key}Engines__{i}", pool.Engines[i].GetEndpoint(HttpEndpoint));
        return autoscaler;
    }

    /// <summary>Marks a resource as a HybridServing component (the Kubernetes publisher reads it).</summary>
    public static IResourceBuilder<T> AsComponent<T>(this IResourceBuilder<T> resource, HybridServingRole role) where T : IResource =>
        resource.WithAnnotation(new HybridServingComponentAnnotation(role));

    /// <summary>
    /// HTTP/1.1 (health, metrics, JSON) and h2c gRPC endpoints, bound by the process itself on fixed
    /// ports through the Kestrel keys every HybridServing service reads.
    /// </summary>
    public static IResourceBuilder<ProjectResource> WithHttpAndGrpc(this IResourceBuilder<ProjectResource> resource, string host, int httpPort, int grpcPort) =>
        resource
            .WithHttpEndpoint(port: httpPort, name: HttpEndpoint, isProxied: false)
            .WithEndpoint(port: grpcPort, name: GrpcEndpoint, scheme: "http", isProxied: false)
            .WithEndpointsInEnvironment(_ => false)
            .WithEnvironment("Kestrel__Endpoints__Http__Url", $"http://{host}:{Invariant(httpPort)}")
            .WithEnvironment("Kestrel__Endpoints__Grpc__Url", $"http://{host}:{Invariant(grpcPort)}")
            .WithEnvironment("Kestrel__Endpoints__Grpc__Protocols", "Http2")
            .WithHttpHealthCheck(HealthPath, endpointName: HttpEndpoint);

    private static string Invariant(int value) => value.ToString(CultureInfo.InvariantCulture);

    private sealed record TenantAnnotation(string Tenant) : IResourceAnnotation;
}

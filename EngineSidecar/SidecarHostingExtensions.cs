using HybridServing.Contracts.Engines;
using HybridServing.Contracts.Net;
using HybridServing.EngineSidecar.Api;
using HybridServing.EngineSidecar.Artifacts;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Engines;
using HybridServing.EngineSidecar.RolloutFile;
using HybridServing.EngineSidecar.Reconciliation;
using HybridServing.EngineSidecar.Telemetry;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace HybridServing.EngineSidecar;

/// <summary>Composition root of the EngineSidecar: <c>builder.AddEngineSidecar()</c> and <c>app.MapEngineSidecar()</c>.</summary>
public static class SidecarHostingExtensions
{
    internal const string EngineClientName = "engine";

    /// <summary>
    /// Reads the <c>Sidecar:</c> section (plus the lora-syncer's <c>DYNAMIC_LORA_ROLLOUT_CONFIG</c>), validates it and
    /// registers the gRPC service, the reconciler, the artifact cache and, in file mode, the config file watcher.
    /// Kestrel's endpoints come from <c>Kestrel:Endpoints:Http</c> and <c>Kestrel:Endpoints:Grpc</c> (Protocols=Http2).
    /// </summary>
    public static WebApplicationBuilder AddEngineSidecar(this WebApplicationBuilder builder)
    {
        var options = builder.Configuration.GetSection(SidecarOptions.SectionName).Get<SidecarOptions>() ?? new SidecarOptions();
        // Aspire-style service discovery, as the AppHost injects it: services__engine__http__0.
        if (string.IsNullOrWhiteSpace(options.EngineUrl) && builder.Configuration["services:engine:http:0"] is { Length: > 0 } discovered)
            options.EngineUrl = discovered;
        if (string.IsNullOrWhiteSpace(options.PodIp) && builder.Configuration["POD_IP"] is { Length: > 0 } podIp)
            options.PodIp = podIp;
        if (string.IsNullOrWhiteSpace(options.ConfigFile) && builder.Configuration["DYNAMIC_LORA_ROLLOUT_CONFIG"] is { Length: > 0 } seedConfig)
            options.ConfigFile = seedConfig;
        var problems = options.Validate().ToList();
        if (problems.Count > 0)
            throw new OptionsValidationException(SidecarOptions.SectionName, typeof(SidecarOptions), problems);

        var services = builder.Services;
        services.AddSingleton(options);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton(_ => new SidecarMetrics());
        services.AddSingleton<AdapterStateStore>();
        services.AddSingleton<HybridServing.Contracts.Telemetry.TraceHandoff>();
        services.AddSingleton(new LocalPathPolicy(options.AllowedLocalRoots));

        // Our own timeouts and retries apply (per call kind); the default resilience pipeline would stack its own
        // 10 s attempt timeout on top and cut long adapter loads and downloads short.
#pragma warning disable EXTEXP0001 // RemoveAllResilienceHandlers is marked experimental; it is the documented way to opt a client out of AddServiceDefaults' pipeline.
        services.AddHttpClient(EngineClientName, c => c.Timeout = Timeout.InfiniteTimeSpan).RemoveAllResilienceHandlers();
        // SSRF guard on every connection of http(s) and Hub downloads, redirects included; the Hub endpoint the operator
        // configured is trusted (host and port), the CDN it redirects to is checked like any other host.
        var hub = HubSettings.From(options.Hub, Environment.GetEnvironmentVariable);
        var guard = new OutboundGuard(options.Sources.Http.AllowedHosts, options.Sources.Http.AllowPrivateNetworks, [hub.Endpoint], "Sidecar:Sources:Http");
        services.AddHttpClient(HttpFileDownloader.ClientName, c => c.Timeout = Timeout.InfiniteTimeSpan)
            .ConfigurePrimaryHttpMessageHandler(() => guard.Apply(new SocketsHttpHandler { AllowAutoRedirect = true, MaxAutomaticRedirections = 5 }))
            .RemoveAllResilienceHandlers();
#pragma warning restore EXTEXP0001

        Func<string, string?> environment = Environment.GetEnvironmentVariable;
        services.AddSingleton<HttpFileDownloader>();
        services.AddSingleton<IArtifactFetcher, HttpArtifactFetcher>();
        services.AddSingleton(_ => new SourceCredentials(KubernetesAccess(options.Kubernetes)));
        services.AddSingleton<IArtifactFetcher>(sp => new HubArtifactFetcher(sp.GetRequiredService<HttpFileDownloader>(), HubSettings.From(options.Hub, environment),
            sp.GetRequiredService<SourceCredentials>()));
        services.AddSingleton<IArtifactFetcher>(sp => new S3ArtifactFetcher(options.S3, environment, sp.GetRequiredService<SourceCredentials>()));
        services.AddSingleton<ArtifactCache>();

        services.AddSingleton(sp =>
        {
            IEngineClient Create(Uri url)
            {
                var http = sp.GetRequiredService<IHttpClientFactory>().CreateClient(EngineClientName);
                http.BaseAddress = url;
                return options.EngineKind == "sglang"
                    ? new SglangEngineClient(http, options.EngineApiKey)
                    : new VllmEngineClient(http, options.EngineApiKey);
            }
            // File mode without Sidecar:EngineUrl: the engine is the file's host:port, followed when the file changes.
            var followFile = string.IsNullOrWhiteSpace(options.EngineUrl);
            var url = followFile ? ConfigFileSource.EngineUrlFromFile(options.EffectiveConfigFile, options.ConfigValidation) : new Uri(options.EngineUrl!);
            return new ResilientEngineClient(Create(url), options.Engine, sp.GetRequiredService<TimeProvider>(),
                sp.GetRequiredService<ILogger<ResilientEngineClient>>(), followFile ? Create : null);
        });
        services.AddSingleton<EngineReconciler>();
        services.AddHostedService(sp => sp.GetRequiredService<EngineReconciler>());
        if (options.FileMode)
        {
            services.AddSingleton<ConfigFileSource>();
            services.AddHostedService(sp => sp.GetRequiredService<ConfigFileSource>());
        }

        services.AddGrpc();
        services.AddGrpcHealthChecks().AddCheck<EngineReadinessCheck>("engine");
        return builder;
    }

    /// <summary>The API server the sidecar reads credentialsSecretRef Secrets from: <c>Sidecar:Kubernetes:ApiServerUrl</c>
    /// (plain, for tests and the API stand-in), else the pod's ServiceAccount in a cluster, else none.</summary>
    private static k8s.IKubernetes? KubernetesAccess(KubernetesAccessOptions options) =>
        options.ApiServerUrl is { Length: > 0 } url ? new k8s.Kubernetes(new k8s.KubernetesClientConfiguration { Host = url })
        : k8s.KubernetesClientConfiguration.IsInCluster() ? new k8s.Kubernetes(k8s.KubernetesClientConfiguration.InClusterConfig())
        : null;

    /// <summary>Maps the EngineSidecar gRPC service, gRPC health checking (grpc.health.v1) and <c>GET /status</c>
    /// (mode, engine, config file problems, allowed local roots, and every adapter's phase, reason and message).</summary>
    public static WebApplication MapEngineSidecar(this WebApplication app)
    {
        app.MapGrpcService<EngineSidecarService>();
        app.MapGrpcHealthChecksService();
        app.MapGet("/status", (SidecarOptions options, ResilientEngineClient engine, AdapterStateStore store, IServiceProvider services) =>
        {
            var file = options.FileMode ? services.GetService<ConfigFileSource>() : null;
            return Results.Json(new
            {
                mode = options.FileMode ? "file" : "grpc",
                engineUrl = engine.BaseAddress.ToString(),
                configFile = options.FileMode ? Path.GetFullPath(options.EffectiveConfigFile) : null,
                configProblem = file?.Problem,
                allowedLocalRoots = services.GetRequiredService<LocalPathPolicy>().Roots,
                adapters = store.List().Select(a => new { name = a.Name, source = AdapterSource.Redact(a.Source), phase = a.Phase.ToString(), reason = a.Reason, message = a.Message }),
            });
        });
        return app;
    }
}

using Grpc.Net.Client;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway;
using HybridServing.Gateway.ColdStarts;
using HybridServing.Gateway.Demand;
using HybridServing.Gateway.Forwarding;
using HybridServing.Gateway.Health;
using HybridServing.Gateway.Limits;
using HybridServing.Gateway.Load;
using HybridServing.Gateway.Observability;
using HybridServing.Gateway.OpenAi;
using HybridServing.Gateway.Picking;
using HybridServing.Gateway.Routing;
using HybridServing.Gateway.Tenancy;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>Composition root of the Gateway: <c>builder.AddGateway()</c> and <c>app.MapGateway()</c>.</summary>
public static class GatewayExtensions
{
    /// <summary>Registers the gateway's services from the <c>Gateway</c> section and <c>services:controlplane:grpc:0</c>.</summary>
    public static TBuilder AddGateway<TBuilder>(this TBuilder builder) where TBuilder : IHostApplicationBuilder
    {
        var services = builder.Services;
        services.AddOptions<GatewayOptions>().Bind(builder.Configuration.GetSection(GatewayOptions.Section))
            .Validate(o => o.MaxRequestBodyBytes > 0, "Gateway:MaxRequestBodyBytes must be > 0.")
            .Validate(o => o.RequestBodyTimeout > TimeSpan.Zero, "Gateway:RequestBodyTimeout must be positive.")
            .Validate(o => o.MaxAttempts >= 1, "Gateway:MaxAttempts must be >= 1.")
            .Validate(o => o.ColdStart.Timeout > TimeSpan.Zero, "Gateway:ColdStart:Timeout must be positive.")
            .Validate(o => o.ColdStart.RetryAfterSeconds >= 1, "Gateway:ColdStart:RetryAfterSeconds must be >= 1.")
            .Validate(o => o.Demand.ReportInterval >= TimeSpan.Zero, "Gateway:Demand:ReportInterval must not be negative (0 turns demand reporting off).")
            .Validate(o => o.Picking.Overflow.Enabled != true || string.Equals(o.Picking.Policy.Trim(), PickingPolicies.Hybrid, StringComparison.OrdinalIgnoreCase),
                "Gateway:Picking:Overflow:Enabled is true but Gateway:Picking:Policy is not 'hybrid': overflow loads belong to the hybrid policy (baselines never overflow); remove the key or use the hybrid policy.")
            .Validate(o => o.Picking.Overflow.FreeSlotHeadroom >= 0, "Gateway:Picking:Overflow:FreeSlotHeadroom must be >= 0.")
            .Validate(o => o.Picking.Overflow.MaxQueueDepth >= 0, "Gateway:Picking:Overflow:MaxQueueDepth must be >= 0.")
            .Validate(o => o.Picking.Overflow.Wait > TimeSpan.Zero, "Gateway:Picking:Overflow:Wait must be positive.")
            .Validate(o => o.Picking.Overflow.RefusalCooldown >= TimeSpan.Zero, "Gateway:Picking:Overflow:RefusalCooldown must not be negative.")
            .Validate(o => o.Picking.Overflow.ControlPathCost >= TimeSpan.Zero, "Gateway:Picking:Overflow:ControlPathCost must not be negative.")
            .Validate(o => o.Picking.Overflow.CostSmoothing is > 0 and <= 1, "Gateway:Picking:Overflow:CostSmoothing must be in (0, 1].")
            .Validate(o => o.Picking.Overflow.WaitToCostRatio is >= 0 and < double.PositiveInfinity, "Gateway:Picking:Overflow:WaitToCostRatio must be a finite number >= 0.")
            .ValidateOnStart();
        services.AddHttpForwarder();
        services.TryAddSingletonTimeProvider();

        var address = builder.Configuration[GatewayOptions.ControlPlaneGrpcKey];
        services.AddSingleton(sp =>
        {
            if (string.IsNullOrWhiteSpace(address) || !Uri.TryCreate(address, UriKind.Absolute, out var uri))
                throw new InvalidOperationException(
                    $"The ControlPlane's gRPC address is missing or invalid ('{address}'): set configuration key '{GatewayOptions.ControlPlaneGrpcKey}' (env services__controlplane__grpc__0), e.g. http://127.0.0.1:8082.");
            return GrpcChannel.ForAddress(uri, new GrpcChannelOptions
            {
                HttpHandler = new SocketsHttpHandler
                {
                    EnableMultipleHttp2Connections = true,
                    KeepAlivePingDelay = TimeSpan.FromSeconds(30),
                    KeepAlivePingTimeout = TimeSpan.FromSeconds(10),
                    ConnectTimeout = TimeSpan.FromSeconds(5),
                },
            });
        });
        services.AddSingleton(sp => new AdapterRouter.AdapterRouterClient(sp.GetRequiredService<GrpcChannel>()));

        services.AddSingleton<RoutingDatastore>();
        services.AddHostedService<RoutingTableSubscriber>();
        services.AddSingleton<DemandCounter>();
        services.AddHostedService<DemandReporter>();
        services.AddSingleton<EngineLoadBoard>();
        services.AddHostedService<EngineLoadScraper>();
        services.AddSingleton<PassiveHealth>();
        services.AddSingleton(sp =>
        {
            var picking = sp.GetRequiredService<IOptions<GatewayOptions>>().Value.Picking;
            return PickingPolicies.Create(picking, picking.Seed is { } seed ? new Random(seed) : new Random());
        });
        services.AddSingleton<EndpointRouter>();
        services.AddSingleton<ModelAliases>();
        services.AddSingleton<ColdStartCoordinator>();
        services.AddSingleton<AsleepPoolHold>();
        services.AddSingleton<OverflowCoordinator>();
        services.AddSingleton<ApiKeyDirectory>();
        services.AddHostedService<ApiKeyFileWatcher>();
        services.AddSingleton<TenantAuthenticator>();
        services.AddSingleton<UsageLedger>();
        services.AddSingleton<RequestRateLimits>();
        services.AddSingleton<AdminUsageEndpoint>();
        services.AddSingleton<EngineForwarder>();
        services.AddSingleton<GatewayTelemetry>();
        services.AddSingleton<InferenceEndpoint>();
        services.AddSingleton<ModelsEndpoint>();
        services.AddHealthChecks().AddCheck<RoutingTableHealthCheck>("routing-table");
        return builder;
    }

    /// <summary>Maps the OpenAI endpoints. Fails at start-up (not at the first request) on invalid tenancy or picking configuration.</summary>
    public static WebApplication MapGateway(this WebApplication app)
    {
        // Resolve eagerly so a bad key file or policy name stops the process with its message.
        var keys = app.Services.GetRequiredService<ApiKeyDirectory>().Current;
        var pipeline = app.Services.GetRequiredService<EndpointPickingPipeline>();
        app.Services.GetRequiredService<RequestRateLimits>();
        app.Services.GetRequiredService<ModelAliases>();
        var options = app.Services.GetRequiredService<IOptions<GatewayOptions>>().Value;
        var log = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger(GatewayTelemetry.Name);
        GatewayLog.Started(log, pipeline.Name, keys.Count, options.Tenancy.RequireApiKey, app.Configuration[GatewayOptions.ControlPlaneGrpcKey]);
        if (options.Tenancy.RequireApiKey && keys.Count == 0) GatewayLog.NoTenants(log);
        var telemetry = app.Services.GetRequiredService<GatewayTelemetry>();
        app.Lifetime.ApplicationStarted.Register(telemetry.StartSeriesAtZero);

        var inference = app.Services.GetRequiredService<InferenceEndpoint>();
        var models = app.Services.GetRequiredService<ModelsEndpoint>();
        app.MapPost("/v1/chat/completions", inference.HandleAsync);
        app.MapPost("/v1/completions", inference.HandleAsync);
        app.MapGet("/v1/models", models.ListAsync);
        app.MapGet("/v1/models/{**model}", (HttpContext ctx, string model) => models.GetAsync(ctx, model));
        app.MapGet("/admin/usage", app.Services.GetRequiredService<AdminUsageEndpoint>().GetAsync);
        return app;
    }

    private static void TryAddSingletonTimeProvider(this IServiceCollection services)
    {
        if (!services.Any(d => d.ServiceType == typeof(TimeProvider))) services.AddSingleton(TimeProvider.System);
    }
}

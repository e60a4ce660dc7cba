using HybridServing.ControlPlane.Telemetry;
using Microsoft.Extensions.DependencyInjection.Extensions;
using HybridServing.ControlPlane.Api;
using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Placement;
using HybridServing.ControlPlane.Reconciliation;
using HybridServing.ControlPlane.Routing;
using HybridServing.ControlPlane.Sources;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>Composition root of the ControlPlane: <c>builder.AddControlPlane()</c> then <c>app.MapControlPlane()</c>.</summary>
public static class ControlPlaneExtensions
{
    /// <summary>Registers the home (<c>ControlPlane:Home</c>: Local, or Kubernetes), discovery, the sidecar connections, the reconciler and the router API.</summary>
    public static WebApplicationBuilder AddControlPlane(this WebApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<HybridServing.ControlPlane.ControlPlaneOptions>()
            .Bind(builder.Configuration.GetSection(HybridServing.ControlPlane.ControlPlaneOptions.Section))
            .ValidateOnStart();
        services.AddSingleton<IValidateOptions<HybridServing.ControlPlane.ControlPlaneOptions>, HybridServing.ControlPlane.ControlPlaneOptionsValidator>();
        services.AddGrpc();
        services.TryAddTimeProvider();
        services.AddSingleton<LoraAdapterStore>();
        services.AddSingleton<RoutingTableStore>();
        services.AddAdapterSources(builder.Configuration);
        services.AddSingleton<EngineRegistry>();
        services.AddSingleton<LocalHome>();
        services.AddSingleton<IControlPlaneHome>(sp => sp.GetRequiredService<LocalHome>());
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<HybridServing.ControlPlane.ControlPlaneOptions>>().Value;
            return new DemandTracker(sp.GetRequiredService<TimeProvider>(), o.DemandWindow, o.RatePerReplica);
        });
        services.AddSingleton<LoraAdapterPhaseGauge>();
        services.AddSingleton<Reconciler>();
        services.AddHostedService(sp => sp.GetRequiredService<Reconciler>());

        // The home is the only thing that differs between running locally and in a cluster.
        if (string.Equals(builder.Configuration[$"{HybridServing.ControlPlane.ControlPlaneOptions.Section}:Home"], "Kubernetes", StringComparison.OrdinalIgnoreCase))
            services.AddKubernetesHome(builder.Configuration);
        // A single local control plane always leads; the Kubernetes home registers Lease-based leadership.
        services.TryAddSingleton<IControlPlaneLeadership, SoleLeadership>();
        return builder;
    }

    /// <summary>Maps the gRPC AdapterRouter, its JSON mirror (<c>/v1/...</c>), the Kubernetes-shaped LoraAdapter API and <c>/v1/status</c>.</summary>
    public static WebApplication MapControlPlane(this WebApplication app)
    {
        app.MapGrpcService<AdapterRouterService>();
        app.MapLoraAdapterApi();
        app.MapRouterJson();
        return app;
    }

    private static void TryAddTimeProvider(this IServiceCollection services)
    {
        if (services.All(d => d.ServiceType != typeof(TimeProvider))) services.AddSingleton(TimeProvider.System);
    }
}

using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Homes;
using HybridServing.ControlPlane.Kubernetes;
using k8s;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Microsoft.Extensions.Hosting;

/// <summary>Selects the Kubernetes home: <c>services.AddKubernetesHome(configuration)</c> after <c>AddControlPlane</c>'s registrations.</summary>
public static class KubernetesHomeExtensions
{
    /// <summary>
    /// Registers the Kubernetes home (informers, status subresource, finalizers, events, Lease) as the
    /// <c>IControlPlaneHome</c>, replacing any home registered before. Reads <c>ControlPlane:Kubernetes</c>.
    /// </summary>
    public static IServiceCollection AddKubernetesHome(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<KubernetesHomeOptions>()
            .Bind(configuration.GetSection(KubernetesHomeOptions.Section))
            .ValidateOnStart();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<KubernetesHomeOptions>, KubernetesHomeOptionsValidator>());
        if (services.All(d => d.ServiceType != typeof(TimeProvider))) services.AddSingleton(TimeProvider.System);

        // Tests (or a host with its own client) may register a KubeApi first.
        services.TryAddSingleton(sp => new KubeApi(new k8s.Kubernetes(ClientConfiguration(sp.GetRequiredService<IOptions<KubernetesHomeOptions>>().Value))));
        // spec.credentialsSecretRef names a Secret in the LoraAdapter's namespace, read through the API (and by the sidecars).
        services.RemoveAll<HybridServing.ControlPlane.Sources.ISecretReader>();
        services.AddSingleton<HybridServing.ControlPlane.Sources.ISecretReader>(sp => new HybridServing.ControlPlane.Sources.KubernetesSecretReader(sp.GetRequiredService<KubeApi>().Client));
        services.TryAddSingleton(sp => KubernetesIdentity.Resolve(sp.GetRequiredService<IOptions<KubernetesHomeOptions>>().Value));
        services.TryAddSingleton<IControlPlaneLeadership>(sp =>
        {
            var options = sp.GetRequiredService<IOptions<KubernetesHomeOptions>>().Value;
            if (!options.LeaderElection) return new SoleLeadership();
            var id = sp.GetRequiredService<KubernetesIdentity>();
            return new LeaseLeadership(sp.GetRequiredService<KubeApi>(), options, id.LeaseNamespace, id.Identity,
                sp.GetRequiredService<ILoggerFactory>().CreateLogger("HybridServing.ControlPlane.Kubernetes.Leadership"));
        });
        services.TryAddSingleton<IAdapterResidency>(sp => new EngineRegistryResidency(
            sp.GetRequiredService<EngineRegistry>(),
            sp.GetRequiredService<IOptions<HybridServing.ControlPlane.ControlPlaneOptions>>().Value.EngineGracePeriod,
            sp.GetRequiredService<TimeProvider>()));
        services.TryAddSingleton(sp => new KubernetesHome(
            sp.GetRequiredService<KubeApi>(),
            sp.GetRequiredService<IOptions<KubernetesHomeOptions>>().Value,
            sp.GetRequiredService<IControlPlaneLeadership>(),
            sp.GetRequiredService<IAdapterResidency>(),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILoggerFactory>(),
            sp.GetRequiredService<KubernetesIdentity>().Identity));
        services.RemoveAll<IControlPlaneHome>();
        services.AddSingleton<IControlPlaneHome>(sp => sp.GetRequiredService<KubernetesHome>());
        services.AddHostedService<LeadershipService>();
        return services;
    }

    internal static KubernetesClientConfiguration ClientConfiguration(KubernetesHomeOptions options)
    {
        if (options.ApiServerUrl is { Length: > 0 } url) return new KubernetesClientConfiguration { Host = url };
        return KubernetesClientConfiguration.IsInCluster()
            ? KubernetesClientConfiguration.InClusterConfig()
            : KubernetesClientConfiguration.BuildConfigFromConfigFile();
    }
}

/// <summary>Who this replica is in the Lease, and where the Lease lives.</summary>
internal sealed record KubernetesIdentity(string Identity, string LeaseNamespace)
{
    private const string ServiceAccountNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

    public static KubernetesIdentity Resolve(KubernetesHomeOptions options)
    {
        // Unique per replica: the pod name in a cluster; elsewhere the host name plus a random suffix, so two
        // processes on one machine never both believe they hold the lease.
        var identity = options.Identity is { Length: > 0 } i ? i
            : Environment.GetEnvironmentVariable("POD_NAME") is { Length: > 0 } pod ? pod
            : $"{System.Net.Dns.GetHostName()}_{Guid.NewGuid().ToString("N")[..8]}";
        var ns = options.LeaseNamespace is { Length: > 0 } n ? n
            : Environment.GetEnvironmentVariable("POD_NAMESPACE") is { Length: > 0 } podNs ? podNs
            : File.Exists(ServiceAccountNamespaceFile) ? File.ReadAllText(ServiceAccountNamespaceFile).Trim()
            : "default";
        return new KubernetesIdentity(identity, ns);
    }
}

/// <summary>Runs the leader election for the host's lifetime and hands the lease back on shutdown.</summary>
internal sealed class LeadershipService(IControlPlaneLeadership leadership) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        if (leadership is LeaseLeadership lease) lease.Start();
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (leadership is LeaseLeadership lease) await lease.DisposeAsync();
    }
}

using System.Collections.Concurrent;
using System.Text.Json.Nodes;

namespace HybridServing.KubeApiTestServer.Resources;

/// <summary>The resources a server instance knows; the defaults are those the ControlPlane uses.</summary>
public sealed class ResourceCatalog
{
    private readonly ConcurrentDictionary<string, ApiResource> _byPath = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, ApiResource> _byKind = new(StringComparer.Ordinal);

    public static readonly ApiResource Pods = new("", "v1", "pods", "Pod", Namespaced: true, HasStatusSubresource: true)
    {
        ShortNames = ["po"],
        Categories = ["all"],
        SelectableFields = ["spec.nodeName", "spec.restartPolicy", "spec.schedulerName", "spec.serviceAccountName", "status.phase", "status.podIP", "status.nominatedNodeName"],
        ReturnsDeletedObject = true,
    };

    public static readonly ApiResource Services = new("", "v1", "services", "Service", true, true) { ShortNames = ["svc"], Categories = ["all"] };
    public static readonly ApiResource Secrets = new("", "v1", "secrets", "Secret", true, false) { SelectableFields = ["type"] };
    public static readonly ApiResource ConfigMaps = new("", "v1", "configmaps", "ConfigMap", true, false) { ShortNames = ["cm"] };
    public static readonly ApiResource Endpoints = new("", "v1", "endpoints", "Endpoints", true, false) { ShortNames = ["ep"] };
    public static readonly ApiResource ServiceAccounts = new("", "v1", "serviceaccounts", "ServiceAccount", true, false) { ShortNames = ["sa"] };

    public static readonly ApiResource CoreEvents = new("", "v1", "events", "Event", true, false)
    {
        ShortNames = ["ev"],
        SelectableFields = ["involvedObject.kind", "involvedObject.namespace", "involvedObject.name", "involvedObject.uid", "involvedObject.apiVersion", "involvedObject.resourceVersion", "involvedObject.fieldPath", "reason", "reportingComponent", "source", "type"],
    };

    public static readonly ApiResource Namespaces = new("", "v1", "namespaces", "Namespace", false, true) { SelectableFields = ["status.phase"], ShortNames = ["ns"] };
    public static readonly ApiResource Nodes = new("", "v1", "nodes", "Node", false, true) { SelectableFields = ["spec.unschedulable"], ShortNames = ["no"] };
    public static readonly ApiResource Leases = new("coordination.k8s.io", "v1", "leases", "Lease", true, false);
    public static readonly ApiResource EndpointSlices = new("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice", true, false);

    public static readonly ApiResource Events = new("events.k8s.io", "v1", "events", "Event", true, false)
    {
        SelectableFields = ["regarding.kind", "regarding.namespace", "regarding.name", "regarding.uid", "reason", "reportingController", "type"],
    };

    public static readonly ApiResource Deployments = new("apps", "v1", "deployments", "Deployment", true, true) 
    {
        HasScaleSubresource = true,
        ShortNames = ["deploy"],
        Categories = ["all"],
    };

    public static readonly ApiResource PodDisruptionBudgets = new("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget", true, true) { ShortNames = ["pdb"] };

    public static readonly ApiResource CustomResourceDefinitions = new("apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", false, true)
    {
        ShortNames = ["crd", "crds"],
        Categories = ["api-extensions"],
    };

    public static readonly ApiResource Roles = new("rbac.authorization.k8s.io", "v1", "roles", "Role", true, false);
    public static readonly ApiResource RoleBindings = new("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", true, false);
    public static readonly ApiResource ClusterRoles = new("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", false, false);
    public static readonly ApiResource ClusterRoleBindings = new("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", false, false);

    public static readonly ApiResource LoraAdapters = new("hybridserving.io", "v1alpha1", "loraadapters", "LoraAdapter", true, true)
    {
        IsCustom = true,
        ReturnsDeletedObject = true,
    };

    /// <summary>Every resource registered by default.</summary>
    public static IReadOnlyList<ApiResource> Defaults { get; } =
    [
        Pods, Services, Secrets, ConfigMaps, Endpoints, ServiceAccounts, CoreEvents, Namespaces, Nodes,
        Leases, EndpointSlices, Events, Deployments, PodDisruptionBudgets, CustomResourceDefinitions,
        Roles, RoleBindings, ClusterRoles, ClusterRoleBindings, LoraAdapters,
    ];

    internal ResourceCatalog(IEnumerable<ApiResource> resources)
    {
        foreach (var resource in resources)
        {
            Register(resource);
        }
    }

    public IReadOnlyCollection<ApiResource> All => _byPath.Values.ToArray();

    /// <summary>Adds a resource (e.g. another CRD); replacing one with the same path is allowed before it holds objects.</summary>
    public void Register(ApiResource resource)
    {
        ArgumentNullException.ThrowIfNull(resource);
        if (string.IsNullOrWhiteSpace(resource.Plural) || string.IsNullOrWhiteSpace(resource.Kind) || string.IsNullOrWhiteSpace(resource.Version))
        {
            throw new ArgumentException("A resource needs a version, a plural and a kind.", nameof(resource));
        }

        _byPath[resource.Key] = resource;
        _byKind[resource.ApiVersion + "/" + resource.Kind] = resource;
    }

    /// <summary>
    /// Serves the custom resource a CustomResourceDefinition declares (every served version), with its
    /// short names, categories, status and scale subresources and printer columns, as the apiextensions
    /// server does once the CRD is established. Replaces an earlier registration of the same resource.
    /// </summary>
    /// <exception cref="ArgumentException">The CRD lacks group, names.plural, names.kind or a served version.</exception>
    public IReadOnlyList<ApiResource> RegisterCustomResourceDefinition(JsonObject crd)
    {
        ArgumentNullException.ThrowIfNull(crd);
        var resources = CustomResourceDefinitionReader.Describe(crd);
        foreach (var resource in resources)
        {
            Register(resource);
        }

        return resources;
    }

    public ApiResource? Find(string group, string version, string plural) =>
        _byPath.TryGetValue(group + "/" + version + "/" + plural, out var r) ? r : null;

    /// <summary>Finds the resource for an object's <c>apiVersion</c> and <c>kind</c>.</summary>
    public ApiResource? FindByKind(string apiVersion, string kind) =>
        _byKind.TryGetValue(apiVersion + "/" + kind, out var r) ? r : null;

    internal bool IsKnownGroupVersion(string group, string version) =>
        _byPath.Values.Any(r => r.Group == group && r.Version == version);
}

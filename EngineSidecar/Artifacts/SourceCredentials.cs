using HybridServing.Contracts.Resources;
using k8s;

namespace HybridServing.EngineSidecar.Artifacts;

/// <summary>
/// The Secrets LoraAdapters name in <c>spec.credentialsSecretRef</c>, which the ControlPlane passes as
/// <c>AdapterSpec.credentials_secret</c> ("namespace/name"). Read through the API server with the sidecar's own
/// ServiceAccount at each download (a single <c>get</c>, never cached on disk, never logged): a Secret changed or
/// created after a failure is used on the next attempt without restarting the pod. Null client: the sidecar has no
/// Kubernetes API (outside a cluster, <c>Sidecar:Kubernetes:ApiServerUrl</c> unset), and a reference fails clearly.
/// </summary>
internal sealed class SourceCredentials(IKubernetes? client) : IDisposable
{
    public async Task<IReadOnlyDictionary<string, string>> ReadAsync(string reference, CancellationToken cancellationToken)
    {
        try
        {
            var (ns, name) = KubernetesSecrets.Parse(reference);
            if (client is null)
                throw new ArtifactException(FailureReasons.CredentialsMissing,
                    $"The adapter names secret '{reference}' (spec.credentialsSecretRef), but this sidecar has no Kubernetes API access to read it (not in a cluster and Sidecar:Kubernetes:ApiServerUrl is not set).");
            return await KubernetesSecrets.ReadAsync(client, ns, name, cancellationToken);
        }
        catch (SecretUnavailableException e)
        {
            throw new ArtifactException(FailureReasons.CredentialsMissing, e.Message, e);
        }
    }

    /// <summary>The values of <paramref name="keys"/>, each required: a missing one is CredentialsMissing naming it (never a value).</summary>
    public static string[] Require(IReadOnlyDictionary<string, string> secret, string reference, params string[] keys)
    {
        var missing = keys.Where(k => string.IsNullOrEmpty(secret.GetValueOrDefault(k))).ToList();
        if (missing.Count > 0)
            throw new ArtifactException(FailureReasons.CredentialsMissing,
                $"Secret '{reference}' named by spec.credentialsSecretRef has no {string.Join(" and no ", missing)}.");
        return [.. keys.Select(k => secret[k])];
    }

    public void Dispose() => client?.Dispose();
}

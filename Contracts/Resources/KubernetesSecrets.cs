using System.Net;
using System.Text;
using k8s;
using k8s.Autorest;

namespace HybridServing.Contracts.Resources;

/// <summary>A Secret named by <c>spec.credentialsSecretRef</c> cannot be read; the message never holds a value.</summary>
public sealed class SecretUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reads one Secret through the API server with the caller's own ServiceAccount (a single <c>get</c>:
/// never a list or watch, so the caller learns only the Secrets LoraAdapters name). Used by the ControlPlane
/// (discovery) and the EngineSidecar (downloads) for <c>spec.credentialsSecretRef</c>, which is namespaced:
/// the Secret lives in the LoraAdapter's namespace.
/// </summary>
public static class KubernetesSecrets
{
    private const int MaxValueBytes = 64 * 1024;

    /// <summary>"namespace/name": how a reference travels to the sidecar in <c>AdapterSpec.credentials_secret</c>.</summary>
    public static string Reference(string @namespace, string name) => @namespace + "/" + name;

    /// <summary>Splits <see cref="Reference"/>'s form; throws <see cref="SecretUnavailableException"/> when it is not "namespace/name".</summary>
    public static (string Namespace, string Name) Parse(string reference)
    {
        var parts = reference.Split('/');
        if (parts.Length != 2 || parts.Any(p => p.Length is 0 or > 253 || !p.All(c => char.IsAsciiLetterLower(c) || char.IsAsciiDigit(c) || c is '-' or '.')))
            throw new SecretUnavailableException($"'{reference}' is not a Secret reference of the form namespace/name.");
        return (parts[0], parts[1]);
    }

    /// <summary>The Secret's keys and values (UTF-8, trimmed; values over 64 KiB are left out).</summary>
    public static async Task<IReadOnlyDictionary<string, string>> ReadAsync(IKubernetes client, string @namespace, string name, CancellationToken cancellationToken)
    {
        k8s.Models.V1Secret secret;
        try
        {
            secret = await client.CoreV1.ReadNamespacedSecretAsync(name, @namespace, cancellationToken: cancellationToken);
        }
        catch (HttpOperationException e)
        {
            throw new SecretUnavailableException(e.Response.StatusCode switch
            {
                HttpStatusCode.NotFound => $"secret '{@namespace}/{name}' named by spec.credentialsSecretRef does not exist.",
                HttpStatusCode.Forbidden => $"secret '{@namespace}/{name}' named by spec.credentialsSecretRef may not be read by this ServiceAccount (403; it needs get on secrets in '{@namespace}').",
                var code => $"reading secret '{@namespace}/{name}' named by spec.credentialsSecretRef failed: the API server answered {(int)code}.",
            }, e);
        }
        catch (HttpRequestException e)
        {
            throw new SecretUnavailableException($"reading secret '{@namespace}/{name}' named by spec.credentialsSecretRef failed: the API server is unreachable ({e.Message}).", e);
        }
        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, bytes) in secret.Data ?? new Dictionary<string, byte[]>())
            if (bytes is { Length: <= MaxValueBytes }) values[key] = Encoding.UTF8.GetString(bytes).Trim();
        return values;
    }
}

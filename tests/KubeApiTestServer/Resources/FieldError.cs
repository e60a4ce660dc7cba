namespace HybridServing.KubeApiTestServer.Resources;

/// <summary>
/// What a validator registered with <see cref="KubeApiServer.AddValidator"/> returns to refuse a write:
/// the server answers 422 Invalid naming <see cref="Field"/>, as a CRD's schema validation would.
/// </summary>
/// <param name="Field">The JSON path, e.g. <c>spec.adapterSource.type</c>.</param>
/// <param name="Message">What is wrong, e.g. <c>Unsupported value: "ftp"</c>.</param>
public sealed record FieldError(string Field, string Message);

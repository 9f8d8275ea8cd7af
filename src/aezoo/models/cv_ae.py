"""The constant-variance autoencoder, with ex-post density estimation for sampling.

Ghosh, Sajjadi, Vergari, Black & Schölkopf 2019, "From Variational to Deterministic Autoencoders",
arXiv:1903.12436 (ICLR 2020), sec. 2 (CV-VAE) and sec. 4 (ex-post density estimation):
    loss = L(x, g(f(x) + eps)) + lambda * ||f(x)||^2,   eps ~ N(0, sigma^2 I) with sigma fixed,
where L is the squared error or the cross-entropy. Fixing the posterior's variance turns the KL into
the code penalty; to sample, a Gaussian mixture is fitted to the codes f(x) of the training set after
training, and z ~ GMM is decoded. With lambda = 0 and sigma = 0 this is the plain autoencoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..config import check
from ..registry import register
from .ae import AE, AEConfig, output_mean, reconstruction_loss
from .base import Claim, ModelOutput


@dataclass
class CvAEConfig(AEConfig):
    # With q(z|x) = N(f(x), sigma^2 I), the KL to N(0, I) is ||f(x)||^2 / 2 + const, so sigma = 1,
    # lam = 0.5 is the CV-VAE's ELBO only when the reconstruction term is a Gaussian NLL of variance
    # 1/2: ||x - x_hat||^2 = -log N(x; x_hat, I/2) + const. A decoder standard deviation of 0.71 is
    # very wide for pixels in [0, 1]: the data term is weak against the penalty and the codes shrink
    # to 0. The defaults below are not that ELBO; on digits they reconstruct as well as the AE.
    sigma: float = 0.1  # the fixed noise scale of z = f(x) + eps
    lam: float = 0.01  # lambda on ||f(x)||^2
    gmm_components: int = 10  # the ex-post density (Ghosh et al. use 10 components)
    gmm_max_codes: int = 20_000  # codes of at most this many training inputs are used for the fit

    def __post_init__(self):
        super().__post_init__()
        check(self.sigma >= 0, "sigma", f"must be >= 0, got {self.sigma}")
        check(self.lam >= 0, "lam", f"must be >= 0, got {self.lam}")
        check(self.gmm_components >= 1, "gmm_components", f"must be >= 1, got {self.gmm_components}")
        check(self.gmm_max_codes >= 2, "gmm_max_codes", f"must be >= 2, got {self.gmm_max_codes}")


@register("cv_ae")
class CvAE(AE):
    Config = CvAEConfig
    generative = True
    claims = (Claim("Ghosh et al. 2019, sec. 4",
                    "Ex-post density estimation makes the deterministic autoencoder generative: the {gmm_components}-component "
                    "GMM fitted to the training codes explains test codes better than one Gaussian with the same mean and "
                    "covariance (expost_code_nll below gaussian_code_nll), and its samples look like the data.",
                    ("expost_code_nll", "gaussian_code_nll", "recon_mse"), figure="samples"),)

    def __init__(self, config: CvAEConfig):
        super().__init__(config)
        k, d = config.gmm_components, config.latent_dim
        # the ex-post GMM, in buffers so the saved model carries it; before fitting, N(0, I)
        self.register_buffer("gmm_weights", torch.full((k,), 1.0 / k))
        self.register_buffer("gmm_means", torch.zeros(k, d))
        self.register_buffer("gmm_scale_tril", torch.eye(d).repeat(k, 1, 1))  # (K, D, D) Cholesky factors

    def forward(self, x, y=None) -> ModelOutput:
        c = self.config
        mu = self.encoder(x)  # (B, D) f(x)
        z = mu + c.sigma * torch.randn_like(mu) if self.training and c.sigma > 0 else mu
        out = self.decoder(z)
        recon = reconstruction_loss(c.loss, out, x).mean()
        penalty = mu.pow(2).sum(1).mean()
        loss = recon + c.lam * penalty if c.lam > 0 else recon
        return ModelOutput(loss=loss, terms={"recon": recon, "code_norm2": penalty}, x_hat=output_mean(c.loss, out), z=mu)

    @torch.no_grad()
    def on_fit_end(self, x: torch.Tensor) -> None:
        """Fit the ex-post Gaussian mixture (full covariances) to the training codes."""
        from sklearn.mixture import GaussianMixture

        c = self.config
        if x.shape[0] > c.gmm_max_codes:
            x = x[torch.randperm(x.shape[0], generator=torch.Generator().manual_seed(0))[: c.gmm_max_codes]]
        was_training = self.training
        self.eval()
        with torch.no_grad():
            codes = torch.cat([self.encode(x[i : i + 1024].to(self.device)) for i in range(0, x.shape[0], 1024)])
        self.train(was_training)
        codes = codes.double().cpu().numpy()
        k = min(c.gmm_components, codes.shape[0])
        gmm = GaussianMixture(k, covariance_type="full", reg_covar=1e-5, random_state=0).fit(codes)
        weights = np.zeros(c.gmm_components)
        weights[:k] = gmm.weights_  # components beyond the number of codes get weight 0
        self.gmm_weights.copy_(torch.from_numpy(weights))
        self.gmm_means[:k].copy_(torch.from_numpy(gmm.means_))
        self.gmm_scale_tril[:k].copy_(torch.from_numpy(np.linalg.cholesky(gmm.covariances_)))

    def expost_density(self) -> torch.distributions.Distribution:
        """The fitted mixture as a torch distribution over codes (float64)."""
        w = self.gmm_weights.double()
        keep = w > 0
        comps = torch.distributions.MultivariateNormal(self.gmm_means.double()[keep], scale_tril=self.gmm_scale_tril.double()[keep])
        return torch.distributions.MixtureSameFamily(torch.distributions.Categorical(probs=w[keep]), comps)

    @torch.no_grad()
    def eval_metrics(self, x, y=None, **options: Any) -> dict[str, Any]:
        """``expost_code_nll``: -log GMM(f(x)) per test code, in nats; ``gaussian_code_nll``: the same under
        the Gaussian with the mixture's mean and covariance (what a single ex-post Gaussian would give)."""
        codes = torch.cat([self.encode(x[i : i + 1024]) for i in range(0, x.shape[0], 1024)]).double()
        gmm = self.expost_density()
        mean = gmm.mean
        cov = (gmm.component_distribution.covariance_matrix + gmm.component_distribution.mean[:, :, None] * gmm.component_distribution.mean[:, None, :])
        cov = (gmm.mixture_distribution.probs[:, None, None] * cov).sum(0) - mean[:, None] * mean[None, :]
        one = torch.distributions.MultivariateNormal(mean, covariance_matrix=cov + 1e-9 * torch.eye(len(mean), dtype=cov.dtype, device=cov.device))
        return {"expost_code_nll": float(-gmm.log_prob(codes).mean()), "gaussian_code_nll": float(-one.log_prob(codes).mean())}

    def sample(self, n, y=None):
        comp = torch.multinomial(self.gmm_weights, n, replacement=True)  # (n,)
        eps = torch.randn(n, self.config.latent_dim, 1, device=self.device)
        z = self.gmm_means[comp] + (self.gmm_scale_tril[comp] @ eps).squeeze(-1)  # (n, D)
        return self.decode(z)
